using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using Xunit.Abstractions;

namespace RsCapRet.Pipeline.Tests;

/// <summary>
/// Change detection on real imagery with the shipped model: the NAIP sample, a copy with an airplane from the UCM
/// mosaic pasted over one tile, a copy with the same pixels (other bytes), and a copy warped to Web Mercator.
/// </summary>
public sealed class ChangeDetectionTests(TestDatabase db, ITestOutputHelper log) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-changes-");
    public void Dispose() => _dir.Delete(true);

    private static string Samples => Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes");
    private const int Tile = 224;

    /// <summary>The NAIP sample's RGB bands as a GeoTIFF, with <paramref name="paste"/> applied to them first.</summary>
    private string NaipCopy(string name, Action<byte[][], int>? paste = null, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var ds = RasterDataset.Open(Path.Combine(Samples, "naip_m_4709963_se_14_1_20200831.tif"));
        var bands = Enumerable.Range(1, 3).Select(b =>
        {
            var buf = new byte[ds.Width * ds.Height];
            ds.Read(b, new PixelWindow(0, 0, ds.Width, ds.Height), buf.AsSpan(), ds.Width, ds.Height);
            return buf;
        }).ToArray();
        paste?.Invoke(bands, ds.Width);
        var path = Path.Combine(_dir.FullName, name);
        RasterWriter.WriteGeoTiff(path, ds.Width, ds.Height, bands, ds.GeoTransform!, 26914, metadata: metadata);
        return path;
    }

    /// <summary>Pastes the mosaic's airplane cell (row 0, column 2; 256 px of 0.3 m imagery) over tile (1, 1).</summary>
    private static void PasteAirplane(byte[][] bands, int width)
    {
        using var mosaic = RasterDataset.Open(Path.Combine(Samples, "ucm_val_mosaic_epsg32610_0.3m.tif"));
        for (var b = 0; b < 3; b++)
        {
            var block = new byte[Tile * Tile];
            mosaic.Read(b + 1, new PixelWindow(2 * 256, 0, 256, 256), block.AsSpan(), Tile, Tile);
            for (var y = 0; y < Tile; y++) Array.Copy(block, y * Tile, bands[b], (Tile + y) * width + Tile, Tile);
        }
    }

    [Fact]
    public async Task APastedPatchRanksFirstAndUnchangedOrResampledGroundDoesNot()
    {
        var model = Path.Combine(RepositoryPaths.FindRoot(), "models", "default");
        using var encoder = RsCapRetTileEncoder.Load(model, "cpu");
        var store = new CatalogStore(db.DataSource);
        var ingestor = new SceneIngestor(store, encoder);
        var before = NaipCopy("before.tif");
        var pasted = NaipCopy("pasted.tif", PasteAirplane);
        var same = NaipCopy("same-pixels.tif", metadata: new Dictionary<string, string> { ["TIFFTAG_IMAGEDESCRIPTION"] = "a copy" });
        var warped = Path.Combine(_dir.FullName, "warped-3857.tif");
        var (code, _, err) = await TestProcess.RunAsync("gdalwarp", ["-q", "-t_srs", "EPSG:3857", "-r", "bilinear", before, warped]);
        Assert.True(code == 0, $"gdalwarp failed: {err}");
        var ids = new Dictionary<string, long>();
        foreach (var path in new[] { before, pasted, same, warped })
        {
            var result = await ingestor.IngestAsync(path);
            Assert.Equal(IngestOutcome.Ingested, result.Outcome);
            ids[Path.GetFileName(path)] = result.SceneId!.Value;
        }

        // The pasted tile first, far from everything else; the rest unchanged (same pixels, same vectors).
        var changes = (await store.ChangesAsync(new ChangeRequest(ids["before.tif"], ids["pasted.tif"], null, null, null, K: 100))).Changes;
        foreach (var c in changes.Take(3)) log.WriteLine($"pasted: {c.Distance:F4} {c.BeforeCaption} -> {c.AfterCaption}");
        var top = await store.GetTileAsync(changes[0].BeforeTile);
        Assert.Equal((Tile, Tile), (top!.PxX, top.PxY));
        Assert.True(changes[0].Distance > 0.2, $"the pasted tile moved by {changes[0].Distance:F4}");
        Assert.All(changes.Skip(1), c => Assert.True(c.Distance < 1e-4, $"unchanged tile {c.BeforeTile} at {c.Distance}"));

        // The same pixels in other bytes: nothing above a small threshold.
        var same_ = (await store.ChangesAsync(new ChangeRequest(ids["before.tif"], ids["same-pixels.tif"], null, null, null, K: 100))).Changes;
        Assert.Equal(changes.Count, same_.Count);
        Assert.All(same_, c => Assert.True(c.Distance < 1e-4, $"tile {c.BeforeTile} at {c.Distance}"));

        // Warped to another CRS (another grid): tiles pair by overlap, and resampling moves vectors far less than the paste.
        var warpedChanges = (await store.ChangesAsync(new ChangeRequest(ids["before.tif"], ids["warped-3857.tif"], null, null, null, K: 100, MinIou: 0.3))).Changes;
        foreach (var c in warpedChanges) log.WriteLine($"warped: iou {c.Iou:F2} distance {c.Distance:F4}");
        Assert.NotEmpty(warpedChanges);
        Assert.All(warpedChanges, c => Assert.True(c.Iou >= 0.3));
        Assert.True(warpedChanges.Max(c => c.Distance) < changes[0].Distance / 2,
            $"resampling moved a tile by {warpedChanges.Max(c => c.Distance):F4}, the paste by {changes[0].Distance:F4}");
    }
}
