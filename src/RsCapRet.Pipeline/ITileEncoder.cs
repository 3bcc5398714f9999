using RsCapRet.Core;
using RsCapRet.Storage;

namespace RsCapRet.Pipeline;

/// <summary>What a model gives a tile: its caption (null when captioning is off) and its 256-d image vector.</summary>
public sealed record TileEncoding(string? Caption, float[] Embedding);

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
}
