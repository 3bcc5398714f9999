using RsCapRet.Core;
using RsCapRet.Storage;

namespace RsCapRet.Inference;

/// <summary>What a model gives a tile: its caption (null when captioning is off) and its 256-d image vector.</summary>
public sealed record TileEncoding(string? Caption, float[] Embedding)
{
    /// <summary>The tile's cell vectors, when asked for (ingest --cells).</summary>
    public TileCells? Cells { get; init; }
}

/// <summary>
/// The cell vectors of one image: <see cref="Rows"/> × <see cref="Cols"/> L2-normalised shared-space vectors, row by
/// row from the image's top-left (<see cref="At"/>), and the image's own normalised vector (<see cref="Tile"/>).
/// </summary>
public sealed record TileCells(int Rows, int Cols, float[] Tile, float[][] Cells)
{
    public float[] At(int row, int col) => Cells[row * Cols + col];

    /// <summary>Cosine of every cell to a normalised query vector, row by row.</summary>
    public double[] Scores(float[] query) => Cells.Select(c => Dot(c, query)).ToArray();

    public static double Dot(float[] a, float[] b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"vectors of {a.Length} and {b.Length} dimensions cannot be compared");
        double s = 0;
        for (var i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }
}

/// <summary>
/// The model as ingestion sees it: batches of RGB tiles in, captions and shared-space vectors out.
/// Implemented by the RS-CapRet model (RsCapRetTileEncoder); tests may use their own.
/// </summary>
public interface ITileEncoder
{
    ModelIdentity Identity { get; }
    /// <summary>Tile edge in pixels the model takes (the vision encoder's image size).</summary>
    int InputSize { get; }
    /// <summary>The ground sample distances the model was trained at, when it records them (ingestion meets it there).</summary>
    RsCapRet.Model.TrainingResolution? TrainingResolution => null;
    /// <summary>The model folder it was loaded from, recorded in the catalogue so `models activate` can name it.</summary>
    string? Directory => null;
    IReadOnlyList<TileEncoding> Encode(IReadOnlyList<RgbImage> tiles, bool caption, CancellationToken ct);

    /// <summary>
    /// <see cref="Encode(IReadOnlyList{RgbImage}, bool, CancellationToken)"/> with each tile's cell vectors from the same
    /// forward pass when <paramref name="cells"/> (encoders without them throw
    /// <see cref="RsCapRet.Model.CellVectorsNotAvailableException"/>).
    /// </summary>
    IReadOnlyList<TileEncoding> Encode(IReadOnlyList<RgbImage> tiles, bool caption, bool cells, CancellationToken ct) =>
        cells ? throw new RsCapRet.Model.CellVectorsNotAvailableException(GetType().Name) : Encode(tiles, caption, ct);
}
