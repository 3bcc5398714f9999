using RsCapRet.Raster;

namespace RsCapRet.Raster.Tests;

public sealed class FootprintTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-footprint-");
    public void Dispose() => _dir.Delete(true);

    private static void AssertRingContains(IReadOnlyList<(double X, double Y)> ring, double lon, double lat, double tol = 1e-6) =>
        Assert.True(ring.Any(p => Math.Abs(p.X - lon) <= tol && Math.Abs(p.Y - lat) <= tol),
            $"({lon}, {lat}) not within {tol} of any of {string.Join(" ", ring)}");

    [Fact]
    public void SceneFootprintAgreesWithGdalinfoWgs84Extent()
    {
        // gdalinfo -json samples/scenes/naip_m_4709963_se_14_1_20200831.tif | .wgs84Extent (7 decimals)
        (double, double)[] expected = [(-99.1856038, 47.0365814), (-99.1854911, 47.0040512), (-99.1240599, 47.0041342), (-99.1241353, 47.0366646)];
        using var tiler = SceneTiler.Open(RasterDatasetTests.NaipSample);
        foreach (var (lon, lat) in expected) AssertRingContains(tiler.Info.FootprintWgs84!.Ring, lon, lat, 1e-6);
    }

    [Fact]
    public void Epsg4326InputKeepsLonLatOrder()
    {
        var path = Path.Combine(_dir.FullName, "wgs84.tif");
        // At the equator, where a degree of longitude and one of latitude are within 0.7 % on the ground (elsewhere the
        // grid makes tiles square in metres, not in degrees: GroundSampleDistanceTests).
        RasterWriter.WriteGeoTiff(path, 32, 32, [Enumerable.Repeat((byte)90, 1024).ToArray()], [10, 0.001, 0, 0.016, 0, -0.001], 4326);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 32 });
        Assert.Equal(4326, tiler.Info.Crs!.Epsg);
        var tile = Assert.Single(tiler.Tiles());
        AssertRingContains(tile.FootprintWgs84!.Ring, 10, 0.016);
        AssertRingContains(tile.FootprintWgs84.Ring, 10.032, -0.016);
    }

    [Fact]
    public void Epsg3857InputTransformsToLonLat()
    {
        // Web Mercator: x = R * lon(rad), y = R * ln(tan(pi/4 + lat/2)), R = 6378137.
        const double r = 6378137;
        double x0 = r * 10 * Math.PI / 180, y0 = r * Math.Log(Math.Tan(Math.PI / 4 + 50 * Math.PI / 360));
        var path = Path.Combine(_dir.FullName, "mercator.tif");
        RasterWriter.WriteGeoTiff(path, 16, 16, [Enumerable.Repeat((byte)90, 256).ToArray()], [x0, 10, 0, y0, 0, -10], 3857);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 16 });
        Assert.Equal(3857, tiler.Info.Crs!.Epsg);
        AssertRingContains(Assert.Single(tiler.Tiles()).FootprintWgs84!.Ring, 10, 50, 1e-9);
    }
}
