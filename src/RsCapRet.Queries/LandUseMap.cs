using System.Globalization;
using System.Text;
using System.Text.Json;
using NetTopologySuite.Geometries;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>
/// The labels and prompt of a zero-shot land-use map: each label becomes a prompt (the template with "{label}"
/// replaced), embedded as a [RET] vector by the scene's model; every tile takes the label whose prompt is nearest.
/// </summary>
public sealed record LandUseQuery(string Scene, IReadOnlyList<string> Labels, string Template)
{
    public const string DefaultTemplate = "{label}";
    public const int MaxLabels = 254;   // class indices 0..253 in a Byte GeoTIFF, 255 = nodata

    /// <summary>
    /// The scene classes of UCM-Captions (21) and RSICD (30), merged where the two name the same thing (baseball
    /// diamond / baseball field, parking lot / parking, harbor / port, agricultural / farmland), in plain words.
    /// </summary>
    public static readonly IReadOnlyList<string> DefaultLabels =
    [
        "airplane", "airport", "bare land", "baseball field", "beach", "bridge", "buildings", "center", "chaparral",
        "church", "commercial area", "dense residential area", "desert", "farmland", "forest", "freeway", "golf course",
        "harbor", "industrial area", "intersection", "meadow", "medium residential area", "mobile home park", "mountain",
        "overpass", "park", "parking lot", "playground", "pond", "railway station", "resort", "river", "runway", "school",
        "sparse residential area", "square", "stadium", "storage tanks", "tennis court", "viaduct",
    ];

    /// <summary>The prompt of each label, in label order.</summary>
    public IReadOnlyList<string> Prompts => Labels.Select(l => Template.Replace("{label}", l, StringComparison.Ordinal)).ToList();

    /// <summary>
    /// Labels from a comma-separated list (<paramref name="labels"/>) or a file of one label per line
    /// (<paramref name="labelsFile"/>; blank lines and lines starting with # are skipped), else the defaults.
    /// </summary>
    /// <param name="maxLabels">the most labels allowed (the host's limit is lower than the map's <see cref="MaxLabels"/>)</param>
    public static LandUseQuery Parse(string? scene, string? labels, string? labelsFile, string? template, int maxLabels = MaxLabels)
    {
        if (string.IsNullOrWhiteSpace(scene)) throw new FormatException("scene: give a scene id or the path of an ingested scene.");
        if (labels is not null && labelsFile is not null) throw new FormatException("labels: give --labels or --labels-file, not both.");
        IReadOnlyList<string> list;
        if (labelsFile is not null)
        {
            if (!File.Exists(labelsFile)) throw new FormatException($"{labelsFile}: labels file does not exist.");
            list = File.ReadAllLines(labelsFile).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
            if (list.Count == 0) throw new FormatException($"{labelsFile}: no labels in the file (one label per line).");
        }
        else if (labels is not null)
        {
            list = labels.Split(',').Select(l => l.Trim()).ToList();
            if (list.Any(l => l.Length == 0)) throw new FormatException($"labels: an empty label in '{labels}' (comma-separated, e.g. forest,river,farmland).");
        }
        else list = DefaultLabels;
        var dup = list.GroupBy(l => l, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new FormatException($"labels: '{dup.Key}' appears twice.");
        maxLabels = Math.Min(maxLabels, MaxLabels);
        if (list.Count > maxLabels) throw new FormatException($"labels: at most {maxLabels} labels, got {list.Count}.");
        template ??= DefaultTemplate;
        if (!template.Contains("{label}", StringComparison.Ordinal))
            throw new FormatException($"template: '{template}' has no {{label}} placeholder (e.g. \"an aerial image of {{label}}\").");
        return new LandUseQuery(scene.Trim(), list, template);
    }
}

/// <summary>A scene's tiles with their labels, and the map's grid: one cell per tile in the scene's CRS.</summary>
public sealed record LandUseMap(LandUseQuery Query, SceneClasses Classes, IReadOnlyList<(byte R, byte G, byte B)> Colours)
{
    /// <summary>Distinct colours for <paramref name="n"/> labels, the same for the same n (hues by the golden angle).</summary>
    public static IReadOnlyList<(byte R, byte G, byte B)> Palette(int n) =>
        Enumerable.Range(0, n).Select(i =>
        {
            var h = i * 137.508 % 360;
            var (s, v) = (i / 12 % 2 == 0 ? 0.70 : 0.45, i / 24 % 2 == 0 ? 0.90 : 0.65);
            return Hsv(h, s, v);
        }).ToList();

    private static (byte, byte, byte) Hsv(double h, double s, double v)
    {
        double c = v * s, x = c * (1 - Math.Abs(h / 60 % 2 - 1)), m = v - c;
        var (r, g, b) = (h / 60) switch { < 1 => (c, x, 0.0), < 2 => (x, c, 0.0), < 3 => (0.0, c, x), < 4 => (0.0, x, c), < 5 => (x, 0.0, c), _ => (c, 0.0, x) };
        return ((byte)Math.Round((r + m) * 255), (byte)Math.Round((g + m) * 255), (byte)Math.Round((b + m) * 255));
    }

    public static string Hex((byte R, byte G, byte B) c) => $"#{c.R:x2}{c.G:x2}{c.B:x2}";

    /// <summary>How many tiles took each label, in label order.</summary>
    public int[] Counts()
    {
        var counts = new int[Query.Labels.Count];
        foreach (var t in Classes.Tiles) counts[t.ClassIndex]++;
        return counts;
    }

    /// <summary>
    /// The class grid as a GeoTIFF: cell (row, col) is tile (row, col), nodata (255) where no tile was stored (skipped
    /// for nodata); the cell is the tile's step on the grid, so with overlapping tiles a cell is the part of its tile
    /// not shared with the next one. The scene's CRS as ingestion recorded it.
    /// </summary>
    public void WriteGeoTiff(string path)
    {
        var tiles = Classes.Tiles;
        if (tiles.Count == 0) throw new InvalidOperationException($"scene {Classes.Scene.Id} has no stored tiles to map");
        var rows = tiles.Max(t => t.GridRow) + 1;
        var cols = tiles.Max(t => t.GridCol) + 1;
        var grid = new byte[rows * cols];
        Array.Fill(grid, (byte)255);
        foreach (var t in tiles) grid[t.GridRow * cols + t.GridCol] = (byte)t.ClassIndex;
        RasterWriter.WriteClassMap(path, cols, rows, grid, GridTransform(), Classes.CrsWkt, Query.Labels, Colours,
            metadata: new Dictionary<string, string>
            {
                ["RSCAPRET_SCENE_ID"] = Classes.Scene.Id.ToString(CultureInfo.InvariantCulture),
                ["RSCAPRET_SCENE"] = Path.GetFileName(Classes.Scene.Path),
                ["RSCAPRET_PROMPT_TEMPLATE"] = Query.Template,
            });
    }

    /// <summary>
    /// The geotransform of the tile grid, from the stored native footprints: a cell's origin is its tile's upper-left
    /// corner and its size the distance between neighbouring tiles (a tile's own size when the grid has one or two
    /// columns or rows). The flush last column and row are drawn one step on, so the map may reach past the raster's
    /// edge by less than a cell. Footprints of a north-up scene are axis-aligned rectangles; others are refused rather than mapped wrongly.
    /// </summary>
    public double[] GridTransform()
    {
        var tiles = Classes.Tiles;
        foreach (var t in tiles)
        {
            var env = t.FootprintNative.EnvelopeInternal;
            if (Math.Abs(env.Area - t.FootprintNative.Area) > 1e-6 * env.Area)
                throw new InvalidOperationException($"scene {Classes.Scene.Id}: its tiles are not north-up rectangles (a rotated geotransform); " +
                                                    "the GeoTIFF grid cannot follow them — use the GeoJSON");
        }
        var first = tiles.MinBy(t => (t.GridRow, t.GridCol))!;
        var e0 = first.FootprintNative.EnvelopeInternal;
        double Step(Func<TileClass, int> index, Func<Envelope, double> coordinate, double fallback)
        {
            // The last column and row sit flush with the raster's edge (closer to their neighbours than the stride):
            // the step is measured between the others, else it is a tile's own size.
            var last = tiles.Max(index);
            var other = tiles.Where(t => index(t) != index(first) && index(t) != last).MinBy(t => Math.Abs(index(t) - index(first)));
            return other is null ? fallback : (coordinate(other.FootprintNative.EnvelopeInternal) - coordinate(e0)) / (index(other) - index(first));
        }
        var dx = Step(t => t.GridCol, e => e.MinX, e0.Width);
        var dy = Step(t => t.GridRow, e => e.MaxY, -e0.Height);   // rows go south: y falls
        return [e0.MinX - first.GridCol * dx, dx, 0, e0.MaxY - first.GridRow * dy, 0, dy];
    }

    /// <summary>A FeatureCollection of the tiles (lon/lat footprints) with label, score and margin, and the legend.</summary>
    public string GeoJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("type", "FeatureCollection");
            w.WriteNumber("scene_id", Classes.Scene.Id);
            w.WriteString("template", Query.Template);
            var counts = Counts();
            w.WriteStartArray("legend");
            for (var i = 0; i < Query.Labels.Count; i++)
            {
                w.WriteStartObject();
                w.WriteNumber("class_index", i);
                w.WriteString("label", Query.Labels[i]);
                w.WriteString("colour", Hex(Colours[i]));
                w.WriteNumber("tiles", counts[i]);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("features");
            foreach (var t in Classes.Tiles)
                GeoJsonGeometry.WriteFeature(w, t.TileId, t.Footprint, p =>
                {
                    p.WriteNumber("tile_id", t.TileId);
                    p.WriteNumber("grid_row", t.GridRow);
                    p.WriteNumber("grid_col", t.GridCol);
                    p.WriteNumber("class_index", t.ClassIndex);
                    p.WriteString("label", Query.Labels[t.ClassIndex]);
                    p.WriteString("colour", Hex(Colours[t.ClassIndex]));
                    p.WriteNumber("score", Math.Round(t.Score, 6));
                    if (t.Margin is { } m) p.WriteNumber("margin", Math.Round(m, 6)); else p.WriteNull("margin");
                });
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Tiles per label (labels no tile took are left out), for the command line.</summary>
    public string Table()
    {
        var counts = Counts();
        var sb = new StringBuilder();
        sb.AppendLine(FormattableString.Invariant($"scene {Classes.Scene.Id} ({Path.GetFileName(Classes.Scene.Path)}): {Classes.Tiles.Count} tiles, {Query.Labels.Count} labels, prompt \"{Query.Template}\""));
        sb.AppendLine($"{"tiles",6} {"share",6} {"mean score",10} {"mean margin",11}  label");
        foreach (var i in Enumerable.Range(0, counts.Length).Where(i => counts[i] > 0).OrderByDescending(i => counts[i]).ThenBy(i => i))
        {
            var mine = Classes.Tiles.Where(t => t.ClassIndex == i).ToList();
            var margin = mine.Where(t => t.Margin is not null).Select(t => t.Margin!.Value).DefaultIfEmpty(double.NaN).Average();
            sb.AppendLine(FormattableString.Invariant($"{counts[i],6} {100.0 * counts[i] / Classes.Tiles.Count,5:F1}% {mine.Average(t => t.Score),10:F3} {margin,11:F3}  {Query.Labels[i]}"));
        }
        return sb.ToString();
    }
}

/// <summary>
/// Runs a <see cref="LandUseQuery"/>: finds the completed scene, embeds the prompts with the model that encoded it,
/// and labels its stored tiles in SQL. A scene that is not ingested, not finished or of another model is a clear
/// error, never an empty map.
/// </summary>
public static class LandUseClassifier
{
    /// <param name="embedPrompts">the [RET] vectors of the prompts and the catalogue id of the model that made them</param>
    public static async Task<LandUseMap> RunAsync(CatalogStore store, LandUseQuery query,
        Func<IReadOnlyList<string>, Task<(int ModelId, IReadOnlyList<float[]> Vectors)>> embedPrompts, CancellationToken ct)
    {
        var scene = await store.FindCompletedSceneAsync(query.Scene, null, ct)
                    ?? throw new SceneNotFoundException($"no ingested scene '{query.Scene}' in the catalogue (ingest it first)");
        if (scene.Status != SceneStatus.Done)
            throw new FormatException($"scene {scene.Id} is {scene.Status.ToString().ToLowerInvariant()}, not done: only completed scenes are mapped");
        var (modelId, vectors) = await embedPrompts(query.Prompts);
        // A path several models show (a reindex with a new model): the version of the model that embedded the prompts.
        if (scene.ModelId != modelId && await store.FindCompletedSceneAsync(query.Scene, modelId, ct) is { Status: SceneStatus.Done } ofModel && ofModel.ModelId == modelId)
            scene = ofModel;
        if (scene.ModelId != modelId)
            throw new FormatException($"scene {scene.Id} was encoded by model {scene.ModelId}, but the prompts by model {modelId}: pass the --model that ingested it");
        var classes = await store.SceneClassesAsync(scene, vectors, ct);
        return new LandUseMap(query, classes, LandUseMap.Palette(query.Labels.Count));
    }
}

/// <summary>The scene a request names is not in the catalogue.</summary>
public sealed class SceneNotFoundException(string message) : Exception(message);
