using System.Globalization;
using System.Text.Json;
using RsCapRet.Core;
using RsCapRet.Raster;

namespace RsCapRet.Training.Datasets;

/// <summary>A cell of the demo mosaic: row, column, UCM image file and class (the mosaic's .index.json).</summary>
public sealed record MosaicCell(int Row, int Col, string Image, string Class);

/// <summary>
/// The demo mosaic (samples/scenes): UCM-Captions images of a Karpathy split laid out on a georeferenced grid, classes
/// drawn round-robin so every class appears, then shuffled with a fixed seed. The placement is illustrative: 0.3 m
/// pixels in UTM zone 10N (EPSG:32610), San Francisco Bay area.
/// </summary>
public static class UcmMosaic
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Side of a UCM image and of a mosaic cell, in pixels.</summary>
    public const int CellSize = 256;

    /// <summary>
    /// Writes a <paramref name="size"/> × <paramref name="size"/> mosaic of <paramref name="split"/>'s images of
    /// <paramref name="classes"/> to <paramref name="outPath"/> (a GeoTIFF) and its cells to a .index.json beside it.
    /// </summary>
    public static IReadOnlyList<MosaicCell> Write(string datasetDirectory, string split, int size, IReadOnlyList<string> classes, string outPath)
    {
        var n = size;
        var images = KarpathyDataset.Load(datasetDirectory, "ucm", new HashSet<string> { split });
        // Round-robin over classes (UCM numbering: class = (N - 1) / 100), so every class appears.
        var classIndex = SceneClassNames.UcmClasses.Select((name, index) => (name, index)).ToDictionary(p => p.name, p => p.index);
        var wanted = classes.Select(c => classIndex.TryGetValue(c, out var k) ? k : throw new ArgumentException($"unknown UCM class '{c}'")).ToHashSet();
        var byClass = images.GroupBy(i => (int.Parse(Path.GetFileNameWithoutExtension(i.ImagePath), CultureInfo.InvariantCulture) - 1) / 100)
            .Where(g => wanted.Contains(g.Key)).OrderBy(g => g.Key)
            .Select(g => (Class: g.Key, Images: new Queue<CaptionedImage>(g.OrderBy(i => i.ImagePath, StringComparer.Ordinal)))).ToList();
        var chosen = new List<(CaptionedImage Image, int Class)>();
        for (var round = 0; chosen.Count < n * n; round++)
            for (var c = 0; c < byClass.Count && chosen.Count < n * n; c++)
                if (byClass[c].Images.Count > 0) chosen.Add((byClass[c].Images.Dequeue(), byClass[c].Class));
                else if (byClass.All(b => b.Images.Count == 0)) throw new ArgumentException("not enough images for the mosaic");
        var rng = new Random(7);
        chosen = chosen.OrderBy(_ => rng.Next()).ToList();
        const int cell = CellSize;
        var mosaicImage = RgbImage.Create(n * cell, n * cell);
        var cells = new List<MosaicCell>();
        for (var k = 0; k < chosen.Count; k++)
        {
            var img = RasterImage.ReadRgb(chosen[k].Image.ImagePath);
            if (img.Width != cell || img.Height != cell) throw new InvalidDataException($"{chosen[k].Image.ImagePath}: {img.Width}x{img.Height}, {cell}x{cell} expected");
            int r = k / n, c = k % n;
            for (var y = 0; y < cell; y++)
                Array.Copy(img.Pixels, y * cell * 3, mosaicImage.Pixels, ((r * cell + y) * n * cell + c * cell) * 3, cell * 3);
            cells.Add(new MosaicCell(r, c, Path.GetFileName(chosen[k].Image.ImagePath), SceneClassNames.UcmClasses[chosen[k].Class]));
        }
        RasterWriter.WriteRgb(outPath, mosaicImage, [551000, 0.3, 0, 4182000, 0, -0.3], 32610, jpegQuality: 92);
        File.WriteAllText(Path.ChangeExtension(outPath, ".index.json"), JsonSerializer.Serialize(cells, Indented));
        return cells;
    }
}
