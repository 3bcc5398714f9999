using System.Globalization;
using System.Text;
using System.Text.Json;
using NetTopologySuite.Geometries;
using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Pipeline;

/// <summary>No tile of a completed scene has this id.</summary>
public sealed class TileNotFoundException(long tileId) : ArgumentException($"no tile {tileId}")
{
    public long TileId { get; } = tileId;
}

/// <summary>
/// A tile's imagery cannot be re-read: its scene is no longer registered, or the file changed or went since it was
/// ingested (<see cref="RegisteredSceneFiles"/>), or the raster cannot be read. <see cref="Problem"/> names no path.
/// </summary>
public sealed class TileImageryUnavailableException(string scenePath, string problem)
    : IOException($"{scenePath}: {problem}")
{
    public string ScenePath { get; } = scenePath;
    public string Problem { get; } = problem;
}

/// <summary>One cell of a tile: its place in the tile's grid (row 0 at the top), cosine to the query, and footprint (EPSG:4326; null without a CRS).</summary>
public sealed record CellScore(int Row, int Col, double Score, Polygon? Footprint);

/// <summary>
/// Where in a tile a query matches: the score of every cell of the model's last feature map (7 × 7 for a ResNet18 at
/// 224 px, 32 input pixels each) against the query, beside the score of the whole tile (the cosine of the normalised
/// mean of the cells, i.e. the tile's image vector recomputed from the re-read imagery).
/// </summary>
public sealed record TileLocalization(TileHit Tile, string Query, int Rows, int Cols, double TileScore, IReadOnlyList<CellScore> Cells)
{
    public CellScore Hottest => Cells.MaxBy(c => c.Score)!;

    /// <summary>A grid of scores (rows top to bottom as in the image) and the hottest cell.</summary>
    public string Table()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(string.Create(inv, $"tile {Tile.TileId} (scene {Tile.SceneId}, grid row {Tile.GridRow} col {Tile.GridCol}, window {Tile.PxWidth}x{Tile.PxHeight}+{Tile.PxX}+{Tile.PxY}), query: {Query}"));
        sb.AppendLine(string.Create(inv, $"tile score {TileScore:F3}; {Rows}x{Cols} cells, cosine to the query (row 0 = top of the tile):"));
        sb.Append("     ");
        for (var c = 0; c < Cols; c++) sb.Append(string.Create(inv, $"{"c" + c,7}"));
        sb.AppendLine();
        for (var r = 0; r < Rows; r++)
        {
            sb.Append(string.Create(inv, $"{"r" + r,4} "));
            for (var c = 0; c < Cols; c++) sb.Append(string.Create(inv, $"{Cells[r * Cols + c].Score,7:F3}"));
            sb.AppendLine();
        }
        var hot = Hottest;
        var centre = hot.Footprint?.Centroid is { } p ? string.Create(inv, $", centre {p.X:F6}, {p.Y:F6}") : "";
        sb.AppendLine(string.Create(inv, $"hottest cell: row {hot.Row} col {hot.Col}, score {hot.Score:F3}{centre}"));
        return sb.ToString();
    }

    /// <summary>A FeatureCollection: one feature per cell (polygon in EPSG:4326, row, col, score), the tile's facts as foreign members.</summary>
    public string GeoJson(string? scenePathShown = null)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("type", "FeatureCollection");
            w.WriteNumber("tile_id", Tile.TileId);
            w.WriteNumber("scene_id", Tile.SceneId);
            w.WriteString("scene", scenePathShown ?? Tile.ScenePath);
            w.WriteString("query", Query);
            w.WriteNumber("tile_score", Math.Round(TileScore, 6));
            w.WriteNumber("rows", Rows);
            w.WriteNumber("cols", Cols);
            w.WriteStartArray("features");
            foreach (var cell in Cells)
                GeoJsonGeometry.WriteFeature(w, cell.Row * Cols + cell.Col, cell.Footprint, p =>
                {
                    p.WriteNumber("row", cell.Row);
                    p.WriteNumber("col", cell.Col);
                    p.WriteNumber("score", Math.Round(cell.Score, 6));
                });
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}

/// <summary>
/// Localises a query inside a stored tile: the tile's window is re-read from its registered scene file (only while it
/// is the file that was ingested, as for thumbnails), one forward pass gives the cell vectors, and each cell is placed
/// on the tile's footprint through the scene's geotransform.
/// </summary>
public static class TileLocalizer
{
    /// <summary>
    /// The stored tile and its imagery, re-read from the scene at <paramref name="size"/> × <paramref name="size"/>
    /// (the model's input) and stretched like the tiles; the open tiler places cells on the ground.
    /// </summary>
    public static async Task<(TileHit Tile, SceneTiler Tiler, RgbImage Image)> ReadAsync(CatalogStore store, RegisteredSceneFiles files, long tileId, int size,
        CancellationToken ct)
    {
        var tile = await store.GetTileAsync(tileId, ct) ?? throw new TileNotFoundException(tileId);
        var scene = await store.GetSceneFileAsync(tile.SceneId, ct);
        if ((scene is null ? "the scene is no longer registered" : await files.ProblemAsync(scene, ct)) is { } problem)
            throw new TileImageryUnavailableException(tile.ScenePath, problem);
        SceneTiler? tiler = null;
        try
        {
            tiler = SceneTiler.Open(tile.ScenePath, new TilingOptions { TileSize = size, AllowMissingCrs = true, MaxNodataFraction = 1 });
            var image = tiler.ReadWindow(new PixelWindow(tile.PxX, tile.PxY, tile.PxWidth, tile.PxHeight), size);
            return (tile, tiler, image);
        }
        catch (RasterException e)
        {
            tiler?.Dispose();
            throw new TileImageryUnavailableException(tile.ScenePath, e.Message);
        }
    }

    /// <summary>
    /// Scores the cells of tile <paramref name="tileId"/> against a query: <paramref name="encode"/> gets the tile's
    /// re-read image and gives its cell vectors and the normalised query vector (one forward pass).
    /// </summary>
    public static async Task<TileLocalization> LocalizeAsync(CatalogStore store, RegisteredSceneFiles files, long tileId, int size, string query,
        Func<RgbImage, (TileCells Cells, float[] Query)> encode, CancellationToken ct)
    {
        var (tile, tiler, image) = await ReadAsync(store, files, tileId, size, ct);
        using (tiler)
        {
            var (cells, vector) = encode(image);
            return Score(tile, tiler, query, cells, vector);
        }
    }

    /// <summary>The scored cells of a tile whose cell vectors are known, placed on the ground by <paramref name="tiler"/> (its scene).</summary>
    public static TileLocalization Score(TileHit tile, SceneTiler? tiler, string query, TileCells cells, float[] vector)
    {
        var scores = cells.Scores(vector);
        var list = new List<CellScore>(cells.Rows * cells.Cols);
        double cw = (double)tile.PxWidth / cells.Cols, ch = (double)tile.PxHeight / cells.Rows;
        for (var r = 0; r < cells.Rows; r++)
        for (var c = 0; c < cells.Cols; c++)
        {
            var footprint = tiler?.Wgs84Footprint(tile.PxX + c * cw, tile.PxY + r * ch, cw, ch);
            list.Add(new CellScore(r, c, scores[r * cells.Cols + c], footprint is null ? null : Geometries.ToPolygon(footprint)));
        }
        return new TileLocalization(tile, query, cells.Rows, cells.Cols, TileCells.Dot(cells.Tile, vector), list);
    }
}
