using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.TestSupport;

namespace RsCapRet.Raster.Tests;

/// <summary>
/// Web Mercator map tiles from a scene, against GDAL's own gdalwarp of the same tile as the independent reference:
/// at a zoom near the scene's resolution (a direct read) and at a low zoom over a large scene (the whole-scene preview).
/// </summary>
public sealed class MapTileTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-maptiles-");
    public void Dispose() => _dir.Delete(true);

    private static string Aerial => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "scenes", "deepforest_test_tiled_epsg28992_0.25m.tif");

    [Fact]
    public void TileAddressesAreCheckedAndBoundedLikeSlippyMaps()
    {
        var world = MapTileAddress.Checked(0, 0, 0);
        Assert.Equal(-20037508.342789244, world.Mercator.MinX, 6);
        Assert.Equal(20037508.342789244, world.Mercator.MaxY, 6);
        var (w, s, e, n) = MapTileAddress.Checked(1, 0, 0).LonLat;   // north-west quarter
        Assert.Equal((-180.0, 0.0, 0.0), (w, Math.Round(s, 9), e));
        Assert.Equal(85.0511287798, n, 8);
        Assert.Contains("zoom 25 is outside 0..24", Assert.Throws<ArgumentOutOfRangeException>(() => MapTileAddress.Checked(25, 0, 0)).Message);
        Assert.Contains("x 4 is outside 0..3 at zoom 2", Assert.Throws<ArgumentOutOfRangeException>(() => MapTileAddress.Checked(2, 4, 0)).Message);
        Assert.Contains("y -1 is outside", Assert.Throws<ArgumentOutOfRangeException>(() => MapTileAddress.Checked(2, 0, -1)).Message);
    }


    private static async Task<byte[]> GdalwarpAsync(string scene, MapTileAddress tile, string resampling, string outPath)
    {
        var (x0, y0, x1, y1) = tile.Mercator;
        var args = new[] { "-q", "-overwrite", "-t_srs", "EPSG:3857", "-te", F(x0), F(y0), F(x1), F(y1), "-ts", "256", "256", "-r", resampling, "-dstalpha", scene, outPath };
        var (code, _, errors) = await TestProcess.RunAsync("gdalwarp", args);
        Assert.True(code == 0, "gdalwarp: " + errors);
        using var ds = RasterDataset.Open(outPath);
        var rgba = new byte[256 * 256 * 4];
        var plane = new byte[256 * 256];
        for (var b = 1; b <= 4; b++)
        {
            ds.Read(b, new PixelWindow(0, 0, 256, 256), plane.AsSpan(), 256, 256);
            for (var k = 0; k < plane.Length; k++) rgba[k * 4 + b - 1] = plane[k];
        }
        return rgba;
        static string F(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task ATileNearTheScenesResolutionMatchesGdalwarpPixelForPixel()
    {
        using var renderer = SceneMapRenderer.Open(Aerial);
        // The scene's centre (EPSG:28992, the Netherlands) in lon/lat, from its footprint; zoom 18 is ~0.37 m/px there.
        using var tiler = SceneTiler.Open(Aerial, new TilingOptions { AllowMissingCrs = true });
        var ring = tiler.Info.FootprintWgs84!.Ring;
        var tile = MapTileAddress.Containing(ring.Average(p => p.X), ring.Average(p => p.Y), 18);
        var ours = renderer.Render(tile);
        Assert.NotNull(ours);
        var theirs = await GdalwarpAsync(Aerial, tile, "near", Path.Combine(_dir.FullName, "near.tif"));
        int both = 0, same = 0, coverageDiffers = 0;
        for (var k = 0; k < 256 * 256; k++)
        {
            var (a, b) = (ours![k * 4 + 3] != 0, theirs[k * 4 + 3] != 0);
            if (a != b) { coverageDiffers++; continue; }
            if (!a) continue;
            both++;
            if (ours[k * 4] == theirs[k * 4] && ours[k * 4 + 1] == theirs[k * 4 + 1] && ours[k * 4 + 2] == theirs[k * 4 + 2]) same++;
        }
        output.WriteLine($"tile {tile}: {same} of {both} pixels equal to gdalwarp -r near; {coverageDiffers} covered by one side only");
        Assert.True(both > 30_000, $"{both} pixels covered by both");
        Assert.True(coverageDiffers < 256 * 4, $"{coverageDiffers} pixels covered by one side only (more than an edge row)");
        Assert.True(same >= both * 0.98, $"{same} of {both} pixels equal to gdalwarp -r near");

        // A tile beside the scene's footprint is not drawn; a tile far away is not even looked at.
        Assert.Null(renderer.Render(MapTileAddress.Checked(18, tile.X + 50, tile.Y)));
        Assert.False(renderer.MayCover(MapTileAddress.Checked(18, 0, 0)));
    }

    [Fact]
    public async Task ALowZoomOverALargeSceneSamplesItsPreviewAndStillMatchesGdalwarp()
    {
        // 4200 x 4200 px (more than one read may take for a tile) at 2 m in UTM 14N: smooth gradients, so a decimated
        // read and GDAL's averaging agree closely.
        const int size = 4200;
        var bands = Enumerable.Range(0, 3).Select(b =>
        {
            var plane = new byte[size * size];
            for (var y = 0; y < size; y++)
                for (var x = 0; x < size; x++)
                    plane[y * size + x] = (byte)(b == 0 ? x * 255 / size : b == 1 ? y * 255 / size : (x + y) * 255 / (2 * size));
            return plane;
        }).ToList();
        var scene = Path.Combine(_dir.FullName, "large.tif");
        RasterWriter.WriteGeoTiff(scene, size, size, bands, [485899, 2, 0, 5209246, 0, -2], 26914);
        Assert.True((long)size * size > SceneMapRenderer.MaxSourcePixels);
        using var renderer = SceneMapRenderer.Open(scene);
        using var tiler = SceneTiler.Open(scene);
        var ring = tiler.Info.FootprintWgs84!.Ring;
        var tile = MapTileAddress.Containing(ring.Average(p => p.X), ring.Average(p => p.Y), 11);   // ~50 m/px: the whole scene in a few dozen pixels... and more
        var ours = renderer.Render(tile)!;
        var theirs = await GdalwarpAsync(scene, tile, "average", Path.Combine(_dir.FullName, "average.tif"));
        int both = 0, coverageDiffers = 0;
        double diff = 0;
        for (var k = 0; k < 256 * 256; k++)
        {
            var (a, b) = (ours[k * 4 + 3] != 0, theirs[k * 4 + 3] != 0);
            if (a != b) { coverageDiffers++; continue; }
            if (!a) continue;
            both++;
            for (var c = 0; c < 3; c++) diff += Math.Abs(ours[k * 4 + c] - theirs[k * 4 + c]);
        }
        output.WriteLine($"tile {tile}: {both} pixels covered by both, {coverageDiffers} by one side only, mean |difference| {diff / (3 * both):F2}");
        Assert.True(both > 500, $"{both} pixels covered by both");
        Assert.True(coverageDiffers <= both / 10, $"{coverageDiffers} pixels covered by one side only, {both} by both");
        Assert.True(diff / (3 * both) < 4, $"mean |difference| {diff / (3 * both):F2} against gdalwarp -r average");
    }
}
