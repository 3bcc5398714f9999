using System.Globalization;
using System.Text;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>
/// A land-use map at cell resolution (classify --cells, issue 30): every cell of every tile (7 × 7 per tile) takes
/// the label whose prompt is nearest to its stored cell vector (ingest --cells), so the map is 7 times finer than the
/// tile grid; same labels, colours and GeoTIFF layout as <see cref="LandUseMap"/>. Pixels are class indices, 255 where
/// no tile was stored.
/// </summary>
public sealed record CellLandUseMap(LandUseMap Tiles, int Width, int Height, byte[] Classes, double[] GeoTransform, int CellTiles)
{
    /// <summary>How many cells took each label, in label order.</summary>
    public int[] Counts()
    {
        var counts = new int[Tiles.Query.Labels.Count];
        foreach (var c in Classes) if (c != 255) counts[c]++;
        return counts;
    }

    /// <summary>
    /// Labels the stored cells of <paramref name="map"/>'s scene (streamed tile by tile) with the prompts' vectors.
    /// Cells are placed through each tile's native footprint: cell (i, j) of a tile is 1/rows × 1/cols of it; where
    /// tiles overlap (the flush last column and row) the later tile's cells are kept.
    /// </summary>
    public static async Task<CellLandUseMap> BuildAsync(CatalogStore store, LandUseMap map, IReadOnlyList<float[]> prompts, CancellationToken ct)
    {
        map.GridTransform();   // refuses scenes whose tiles are not north-up rectangles
        var tiles = map.Classes.Tiles.ToDictionary(t => (t.GridRow, t.GridCol));
        if (tiles.Count == 0) throw new InvalidOperationException($"scene {map.Classes.Scene.Id} has no stored tiles to map");
        var envelopes = tiles.Values.Select(t => t.FootprintNative.EnvelopeInternal).ToList();
        double x0 = envelopes.Min(e => e.MinX), y0 = envelopes.Max(e => e.MaxY);
        double xEnd = envelopes.Max(e => e.MaxX), yEnd = envelopes.Min(e => e.MinY);
        byte[]? grid = null;
        int width = 0, height = 0, mapped = 0;
        double cellW = 0, cellH = 0;
        var scores = new double[prompts.Count];
        await foreach (var (row, col, cells) in store.SceneCellsAsync(map.Classes.Scene.Id, ct))
        {
            if (!tiles.TryGetValue((row, col), out var tile)) continue;
            var env = tile.FootprintNative.EnvelopeInternal;
            if (grid is null)
            {
                // The cell size of the first tile holds for the scene: its tiles share one size.
                (cellW, cellH) = (env.Width / cells.Cols, env.Height / cells.Rows);
                (width, height) = ((int)Math.Round((xEnd - x0) / cellW), (int)Math.Round((y0 - yEnd) / cellH));
                grid = new byte[width * height];
                Array.Fill(grid, (byte)255);
            }
            int px = (int)Math.Round((env.MinX - x0) / cellW), py = (int)Math.Round((y0 - env.MaxY) / cellH);
            for (var i = 0; i < cells.Rows; i++)
                for (var j = 0; j < cells.Cols; j++)
                {
                    int x = px + j, y = py + i;
                    if (x < 0 || y < 0 || x >= width || y >= height) continue;
                    var v = cells.Vectors[i * cells.Cols + j];
                    for (var k = 0; k < prompts.Count; k++) scores[k] = Dot(v, prompts[k]);
                    grid[y * width + x] = (byte)Array.IndexOf(scores, scores.Max());
                }
            mapped++;
        }
        if (grid is null)
            throw new FormatException($"scene {map.Classes.Scene.Id} has no stored cell vectors: ingest it with --cells (e.g. rscapret ingest --cells --force FILE)");
        return new CellLandUseMap(map, width, height, grid, [x0, cellW, 0, y0, 0, -cellH], mapped);
    }

    private static double Dot(float[] a, float[] b)
    {
        var s = 0f;
        var i = 0;
        var n = System.Numerics.Vector<float>.Count;
        var acc = System.Numerics.Vector<float>.Zero;
        for (; i <= a.Length - n; i += n) acc += new System.Numerics.Vector<float>(a, i) * new System.Numerics.Vector<float>(b, i);
        s = System.Numerics.Vector.Sum(acc);
        for (; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>The GeoTIFF: class indices at cell resolution, the tile map's colour table, label names and metadata.</summary>
    public void WriteGeoTiff(string path)
    {
        var query = Tiles.Query;
        RasterWriter.WriteClassMap(path, Width, Height, Classes, GeoTransform, Tiles.Classes.CrsWkt, query.Labels, Tiles.Colours,
            metadata: new Dictionary<string, string>
            {
                ["RSCAPRET_SCENE_ID"] = Tiles.Classes.Scene.Id.ToString(CultureInfo.InvariantCulture),
                ["RSCAPRET_SCENE"] = Path.GetFileName(Tiles.Classes.Scene.Path),
                ["RSCAPRET_PROMPT_TEMPLATE"] = query.Template,
                ["RSCAPRET_RESOLUTION"] = "cell",
            });
    }

    /// <summary>Cells per label (labels no cell took are left out), for the command line.</summary>
    public string Table()
    {
        var counts = Counts();
        var total = counts.Sum();
        var sb = new StringBuilder();
        sb.AppendLine(FormattableString.Invariant($"cell resolution: {Width}x{Height} cells ({CellTiles} tiles with stored cells), {total} labelled"));
        foreach (var i in Enumerable.Range(0, counts.Length).Where(i => counts[i] > 0).OrderByDescending(i => counts[i]).ThenBy(i => i))
            sb.AppendLine(FormattableString.Invariant($"{counts[i],8} {100.0 * counts[i] / total,5:F1}%  {Tiles.Query.Labels[i]}"));
        return sb.ToString();
    }
}
