using System.Diagnostics;
using RsCapRet.TestSupport;
using Xunit.Abstractions;

namespace RsCapRet.Raster.Tests;

/// <summary>
/// Hardening round two, item 4 for scene files: what opening and tiling a scene makes GDAL decode is bounded from the
/// file's declared structure before any pixel is read — bands decoded per pixel, bytes of one block, declared bytes
/// per byte of file — each refusal naming the file and the limit; and the decoding stops when the run is cancelled.
/// The files are hand-written TIFFs whose strips share one deflated blob (<see cref="CraftedTiffs"/>).
/// </summary>
public sealed class SceneDecodeBoundsTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-decode-");
    public void Dispose() => _dir.Delete(true);
    private string TempPath(string name) => Path.Combine(_dir.FullName, name);

    private RasterException RefusedQuickly(string path, TilingOptions? options = null)
    {
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<RasterException>(() => SceneTiler.Open(path, options).Dispose());
        output.WriteLine($"{new FileInfo(path).Length:N0} bytes, refused in {sw.Elapsed.TotalMilliseconds:F0} ms: {e.Message}");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"refusing {Path.GetFileName(path)} took {sw.Elapsed}");
        Assert.Contains(Path.GetFileName(path), e.Message);
        return e;
    }

    [Fact]
    public void AFileInterleavingThousandsOfBandsByPixelIsRefusedWhileBandByBandOnlyTheChosenAreDecoded()
    {
        // The upload report's shape as a scene: 7000 x 7000 px x 4000 Byte bands in one pixel-interleaved plane.
        var bomb = CraftedTiffs.SharedStrips(TempPath("bands-bomb.tif"), 7000, 7000, 4000, rowsPerStrip: 1);
        output.WriteLine($"{Path.GetFileName(bomb)}: {new FileInfo(bomb).Length:N0} bytes");
        var e = RefusedQuickly(bomb);
        Assert.Contains("interleaves 4000 bands by pixel", e.Message);
        Assert.Contains("limit of 64 bands decoded per pixel", e.Message);
        Assert.Contains(TilingOptions.MaxDecodedBandsVariable, e.Message);

        // Many bands stored band by band: reading three decodes three, whatever the count.
        var planes = CraftedTiffs.SharedStrips(TempPath("200-planes.tif"), 256, 256, 200, rowsPerStrip: 256, pixelInterleaved: false);
        using (var tiler = SceneTiler.Open(planes))
        {
            Assert.Equal(200, tiler.Info.BandCount);
            Assert.Equal([1, 2, 3], tiler.Info.RgbBands);
            Assert.Equal(4, tiler.Tiles().Count());
        }
        // Interleaved by pixel, but within the limit: read as before; and the limit is the options' own.
        var sixteen = CraftedTiffs.SharedStrips(TempPath("16-interleaved.tif"), 256, 256, 16, rowsPerStrip: 256);
        using (var tiler = SceneTiler.Open(sixteen)) Assert.Equal(4, tiler.Tiles().Count());
        Assert.Contains("limit of 8 bands", RefusedQuickly(sixteen, new TilingOptions { MaxDecodedBands = 8 }).Message);
    }

    [Fact]
    public void ATinyFileDeclaringAHugeRasterInStripsSharingOneBlobIsRefused()
    {
        // 40000 x 40000 px x 3 bands (4.5 GB to decode, 32,041 tiles: under the grid limit) in about 25 KB.
        var bomb = CraftedTiffs.SharedStrips(TempPath("shared-strips.tif"), 40_000, 40_000, 3, rowsPerStrip: 16);
        var size = new FileInfo(bomb).Length;
        output.WriteLine($"{Path.GetFileName(bomb)}: {size:N0} bytes");
        Assert.True(size < 100_000);
        var e = RefusedQuickly(bomb);
        Assert.Contains("declares 40000x40000 px x 3 bands (4.5 GB to decode)", e.Message);
        Assert.Contains("more than the limit of 10,000", e.Message);
        Assert.Contains(TilingOptions.MaxDecodeRatioVariable, e.Message);

        // The same structure at a ratio deflate reaches by itself opens.
        var honest = CraftedTiffs.SharedStrips(TempPath("honest.tif"), 256, 256, 3, rowsPerStrip: 256);
        using (var tiler = SceneTiler.Open(honest)) Assert.Equal(4, tiler.Tiles().Count());
    }

    [Fact]
    public void ASceneStoredInBlocksTooLargeToDecodePerTileIsRefused()
    {
        // Strips of 4000 rows: every tile touching one decodes all of it (GDAL reads only a single-strip image row by
        // row). By default (256 MB) a 3-band strip of 12000 x 8000 px is refused; here a smaller one against a smaller
        // limit, the same rule.
        Assert.Equal(256L << 20, new TilingOptions().MaxBlockBytes);
        var tallStrips = CraftedTiffs.SharedStrips(TempPath("tall-strips.tif"), 4000, 8000, 3, rowsPerStrip: 4000);
        var e = RefusedQuickly(tallStrips, new TilingOptions { MaxBlockBytes = 16L << 20 });
        Assert.Contains("blocks of 4000x4000 px that decode to 46 MB each", e.Message);
        Assert.Contains("more than the limit of 16 MB", e.Message);
        Assert.Contains(TilingOptions.MaxBlockMbVariable, e.Message);
        using var tiler = SceneTiler.Open(tallStrips);   // 46 MB: within the default
        Assert.Equal(36 * 18, tiler.Info.GridRows * tiler.Info.GridCols);
    }

    [Fact]
    public void CancellationStopsTheDecodingOfASceneMidRead()
    {
        var unbounded = new TilingOptions { MaxDecodeRatio = long.MaxValue, Stretch = StretchMode.Percentile };
        // Statistics: a decimated read of the whole scene (8000 x 8000 x 3, strips of 16 rows: every strip decoded).
        var scene = CraftedTiffs.SharedStrips(TempPath("statistics.tif"), 8000, 8000, 3, rowsPerStrip: 16);
        Assert.Throws<OperationCanceledException>(() => SceneTiler.Open(scene, unbounded, new CancellationToken(true)));
        SceneTiler.Open(scene, unbounded).Dispose();   // warm
        AssertStopsEarly("opening (statistics)", ct => SceneTiler.Open(scene, unbounded, ct).Dispose());

        // One tile: 16x coarser than native, so one tile reads a 3584-px window of 64 pixel-interleaved bands.
        var wide = CraftedTiffs.SharedStrips(TempPath("tile.tif"), 8000, 8000, 64, rowsPerStrip: 16);
        var coarse = unbounded with { TargetGsd = 16, Stretch = StretchMode.None };
        AssertStopsEarly("the first tile", ct =>
        {
            using var tiler = SceneTiler.Open(wide, coarse, ct);
            _ = tiler.Tiles(ct).First();
        });
    }

    private void AssertStopsEarly(string what, Action<CancellationToken> read) =>
        CancellationChecks.AssertStopsEarly(what, read, output.WriteLine);
}
