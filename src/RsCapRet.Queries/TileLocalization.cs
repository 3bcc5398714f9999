using System.Globalization;
using System.Text;
using System.Text.Json;
using NetTopologySuite.Geometries;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

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

    /// <summary>Where the cell vectors came from: "imagery" (re-read, one forward pass) or "stored" (ingest --cells).</summary>
    public string CellsFrom { get; init; } = "imagery";

    /// <summary>How far below the hottest cell a cell may score and still count as hot (<see cref="Hot"/>).</summary>
    public const double HotMargin = 0.05;

    /// <summary>
    /// The hottest cells: those within <paramref name="margin"/> of the best cell's score (always the best one), merged
    /// into one (multi)polygon in EPSG:4326 (null without footprints).
    /// </summary>
    public HotCells Hot(double margin = HotMargin)
    {
        var best = Hottest.Score;
        var hot = Cells.Where(c => c.Score >= best - margin).ToList();
        var shapes = hot.Where(c => c.Footprint is not null).Select(c => (Geometry)c.Footprint!).ToList();
        Geometry? area = shapes.Count == 0 ? null : NetTopologySuite.Operation.Union.UnaryUnionOp.Union(shapes);
        return new HotCells(hot.Select(c => (c.Row, c.Col)).ToList(), best, best - margin, area, CellsFrom);
    }

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
            w.WriteString("cells_from", CellsFrom);
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
            tiler = SceneTiler.Open(tile.ScenePath, new TilingOptions { TileSize = size, AllowMissingCrs = true, MaxNodataFraction = 1 }, ct);
            var image = tiler.ReadWindow(new PixelWindow(tile.PxX, tile.PxY, tile.PxWidth, tile.PxHeight), size);
            return (tile, tiler, image);
        }
        catch (RasterException e)
        {
            tiler?.Dispose();
            throw new TileImageryUnavailableException(tile.ScenePath, e.Message);
        }
    }

    /// <summary>The stored tile's imagery alone (<see cref="ReadAsync"/> without the tiler).</summary>
    public static async Task<RgbImage> ReadImageAsync(CatalogStore store, RegisteredSceneFiles files, long tileId, int size, CancellationToken ct)
    {
        var (_, tiler, image) = await ReadAsync(store, files, tileId, size, ct);
        tiler.Dispose();
        return image;
    }

    /// <summary><see cref="ReadImageAsync"/>, or null when the tile is gone or its imagery cannot be read (a chat leaves it out).</summary>
    public static async Task<RgbImage?> TryReadImageAsync(CatalogStore store, RegisteredSceneFiles files, long tileId, int size, CancellationToken ct)
    {
        try { return await ReadImageAsync(store, files, tileId, size, ct); }
        catch (Exception e) when (e is TileImageryUnavailableException or TileNotFoundException) { return null; }
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

    /// <summary>
    /// The tile's stored cells scored against the vector <paramref name="vector"/> gives (null: none usable), when it
    /// has cells stored by model <paramref name="modelId"/>; null otherwise (the caller re-reads the imagery).
    /// </summary>
    public static async Task<TileLocalization?> FromStoredAsync(CatalogStore store, long tileId, int modelId, string query,
        Func<Task<float[]?>> vector, CancellationToken ct)
    {
        var stored = (await store.GetTileCellsAsync([tileId], ct)).GetValueOrDefault(tileId);
        if (stored is null || stored.ModelId != modelId || await store.GetTileAsync(tileId, ct) is not { } tile) return null;
        return await vector() is { } v ? FromStored(tile, stored, query, v) : null;
    }

    /// <summary>
    /// The scored cells of a tile from its stored cell vectors (ingest --cells), placed on its stored footprint: no
    /// imagery, no forward pass. The tile score is the stored vector's (the search's own score).
    /// </summary>
    public static TileLocalization FromStored(TileHit tile, StoredTileCells stored, string query, float[] vector) =>
        FromCells(tile, new TileCells(stored.Cells.Rows, stored.Cells.Cols, stored.TileVector, stored.Cells.Vectors), query, vector) with { CellsFrom = "stored" };

    /// <summary>Cells scored and placed on the tile's footprint (<see cref="CellFootprints"/>), without the scene file.</summary>
    public static TileLocalization FromCells(TileHit tile, TileCells cells, string query, float[] vector)
    {
        var scores = cells.Scores(vector);
        var footprints = CellFootprints(tile.Footprint, cells.Rows, cells.Cols);
        var list = new List<CellScore>(cells.Rows * cells.Cols);
        for (var k = 0; k < scores.Length; k++) list.Add(new CellScore(k / cells.Cols, k % cells.Cols, scores[k], footprints?[k]));
        return new TileLocalization(tile, query, cells.Rows, cells.Cols, TileCells.Dot(cells.Tile, vector), list);
    }

    /// <summary>
    /// The cells of a tile's EPSG:4326 footprint (a quadrilateral of the window's four corners), by bilinear
    /// interpolation of its corners; neighbours share their corner points exactly, so they merge cleanly. Null
    /// without a footprint.
    /// </summary>
    public static Polygon[]? CellFootprints(Polygon? footprint, int rows, int cols)
    {
        if (footprint is null || footprint.ExteriorRing.NumPoints != 5) return null;
        var (tl, tr, br, bl) = Corners(footprint.ExteriorRing.Coordinates);
        var grid = new Coordinate[(rows + 1) * (cols + 1)];
        for (var r = 0; r <= rows; r++)
            for (var c = 0; c <= cols; c++)
            {
                double u = (double)c / cols, v = (double)r / rows;
                grid[r * (cols + 1) + c] = new Coordinate(
                    (1 - u) * (1 - v) * tl.X + u * (1 - v) * tr.X + u * v * br.X + (1 - u) * v * bl.X,
                    (1 - u) * (1 - v) * tl.Y + u * (1 - v) * tr.Y + u * v * br.Y + (1 - u) * v * bl.Y);
            }
        var factory = footprint.Factory;
        var cells = new Polygon[rows * cols];
        for (var r = 0; r < rows; r++)
            for (var c = 0; c < cols; c++)
            {
                Coordinate At(int rr, int cc) => grid[rr * (cols + 1) + cc].Copy();
                cells[r * cols + c] = factory.CreatePolygon([At(r, c), At(r, c + 1), At(r + 1, c + 1), At(r + 1, c), At(r, c)]);
            }
        return cells;
    }

    /// <summary>
    /// The top-left, top-right, bottom-right and bottom-left corners of a north-up tile's ring (lon/lat, y up),
    /// whatever vertex it starts at and whichever way it turns (the database and GeoJSON writers may reorient rings):
    /// clockwise order from the most north-western vertex.
    /// </summary>
    private static (Coordinate TL, Coordinate TR, Coordinate BR, Coordinate BL) Corners(Coordinate[] ring)
    {
        var quad = ring.Take(4).ToList();
        double signedArea = 0;
        for (var i = 0; i < 4; i++) signedArea += quad[i].X * quad[(i + 1) % 4].Y - quad[(i + 1) % 4].X * quad[i].Y;
        if (signedArea > 0) quad.Reverse();   // counter-clockwise: turn it clockwise (east from the top-left)
        double minX = quad.Min(c => c.X), maxX = quad.Max(c => c.X), minY = quad.Min(c => c.Y), maxY = quad.Max(c => c.Y);
        double w = Math.Max(maxX - minX, 1e-12), h = Math.Max(maxY - minY, 1e-12);
        var start = quad.IndexOf(quad.MinBy(c => (c.X - minX) / w + (maxY - c.Y) / h)!);
        return (quad[start], quad[(start + 1) % 4], quad[(start + 2) % 4], quad[(start + 3) % 4]);
    }
}

/// <summary>
/// A search result's hottest cells (<see cref="TileLocalization.Hot"/>): which cells, the best cell's score, the score
/// a cell needed, their merged area in EPSG:4326, and where the cell vectors came from ("stored" or "imagery").
/// </summary>
public sealed record HotCells(IReadOnlyList<(int Row, int Col)> Cells, double BestScore, double Threshold, Geometry? Area, string From);

/// <summary>A model that gives cell vectors: its catalogue id, input size, and cell vectors of images (one forward pass).</summary>
public sealed record CellEncoder(int ModelId, int InputSize, Func<IReadOnlyList<RgbImage>, IReadOnlyList<TileCells>> Encode);

/// <summary>
/// Hot cells for search results (search --localize, API localize=1): stored cell vectors where the tile has them
/// (and was ingested by the model that made the query), else the tile's imagery re-read and encoded — all the
/// missing tiles in one forward pass. Bounded by <see cref="MaxRows"/> results.
/// </summary>
public static class SearchLocalizer
{
    /// <summary>The most results one search may localise (each may need a read of its scene and a forward pass).</summary>
    public const int MaxRows = 20;

    /// <summary>Why a result has no hot cells without a model: it has no stored cell vectors.</summary>
    public const string NotStored = "no stored cell vectors";

    /// <summary>Hot cells by tile id, and why the others have none (imagery gone or unreadable, another model).</summary>
    public sealed record Outcome(IReadOnlyDictionary<long, HotCells> Hot, IReadOnlyDictionary<long, string> Missing)
    {
        public bool NeedsModel => Missing.Values.Any(m => m == NotStored);
    }

    /// <param name="encoder">The model for tiles without stored cells; null: stored cells only (the others are <see cref="NotStored"/>).</param>
    public static async Task<Outcome> LocalizeAsync(CatalogStore store, RegisteredSceneFiles files, IReadOnlyList<TileHit> hits, string query,
        float[] vector, int queryModelId, CellEncoder? encoder, CancellationToken ct)
    {
        if (hits.Count > MaxRows) throw new ArgumentException($"localize is limited to {MaxRows} results at a time, got {hits.Count}");
        var hot = new Dictionary<long, HotCells>();
        var missing = new Dictionary<long, string>();
        var stored = await store.GetTileCellsAsync(hits.Select(h => h.TileId).ToList(), ct);
        var toRead = new List<TileHit>();
        foreach (var h in hits)
        {
            if (stored.TryGetValue(h.TileId, out var s) && s.ModelId == queryModelId)
                hot[h.TileId] = TileLocalizer.FromStored(h, s, query, vector).Hot();
            else if (encoder is null) missing[h.TileId] = NotStored;
            else if (encoder.ModelId != queryModelId) missing[h.TileId] = "the query's model is not the serving model";
            else toRead.Add(h);
        }
        if (toRead.Count == 0) return new Outcome(hot, missing);
        var read = new List<(TileHit Hit, RgbImage Image)>();
        foreach (var h in toRead)
        {
            try
            {
                var (_, tiler, image) = await TileLocalizer.ReadAsync(store, files, h.TileId, encoder!.InputSize, ct);
                tiler.Dispose();
                read.Add((h, image));
            }
            catch (TileImageryUnavailableException e) { missing[h.TileId] = e.Problem; }
            catch (TileNotFoundException) { missing[h.TileId] = "the tile is gone"; }
        }
        if (read.Count == 0) return new Outcome(hot, missing);
        var encoded = encoder!.Encode(read.Select(r => r.Image).ToList());
        for (var i = 0; i < read.Count; i++) hot[read[i].Hit.TileId] = TileLocalizer.FromCells(read[i].Hit, encoded[i], query, vector).Hot();
        return new Outcome(hot, missing);
    }
}
