using RsCapRet.Raster;

namespace RsCapRet.Raster.Tests;

/// <summary>
/// Pixel sizes in metres whatever the CRS measures in: a geographic CRS's degrees on its ellipsoid at the scene's
/// latitude, a projected CRS's feet; and tiles square on the ground where degrees make pixels that are not.
/// </summary>
public sealed class GroundSampleDistanceTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-gsd-");
    public void Dispose() => _dir.Delete(true);

    private string Write(string name, int w, int h, double[] gt, int epsg)
    {
        var band = Enumerable.Range(0, w * h).Select(i => (byte)(20 + i % w % 200)).ToArray();
        var path = Path.Combine(_dir.FullName, name);
        RasterWriter.WriteGeoTiff(path, w, h, [band, band, band], gt, epsg);
        return path;
    }

    // The length of a degree on WGS84 as geodesy tables give it: longitude 111,320 m at the equator and 55,800 m at
    // 60°; latitude 110,574 m and 111,412 m.
    [Theory]
    [InlineData(0.0, 111_320, 110_574)]
    [InlineData(60.0, 55_800, 111_412)]
    public void DegreesAreMeasuredOnTheEllipsoidAtTheScenesCentreLatitude(double latitude, double lonDegreeMetres, double latDegreeMetres)
    {
        const double step = 1e-5;
        var path = Write($"wgs84-{latitude}.tif", 100, 100, [10, step, 0, latitude + 50 * step, 0, -step], 4326);
        using var ds = RasterDataset.Open(path);
        var (column, row) = ds.PixelMetres!.Value;
        Assert.Equal(lonDegreeMetres * step, column, lonDegreeMetres * step * 1e-3);
        Assert.Equal(latDegreeMetres * step, row, latDegreeMetres * step * 1e-3);
        Assert.Equal(Math.Sqrt(column * row), ds.MetresPerPixel!.Value, 12);
        var json = System.Text.Json.Nodes.JsonNode.Parse(SceneDescription.Json(path))!;
        Assert.Equal([column, row], json["pixel_size_metres"]!.AsArray().Select(v => v!.GetValue<double>()));
    }

    [Fact]
    public void FeetBecomeMetres()
    {
        // NAD83 / New York Long Island (ftUS): a US survey foot is 1200/3937 m.
        var path = Write("feet.tif", 50, 50, [1_000_000, 1, 0, 200_000, 0, -1], 2263);
        using var ds = RasterDataset.Open(path);
        Assert.Equal(1200.0 / 3937, ds.MetresPerPixel!.Value, 9);
    }

    [Fact]
    public void WithoutACrsThePixelSizeStaysInTheFilesUnits()
    {
        var path = Path.Combine(_dir.FullName, "plain.tif");
        var band = new byte[32 * 32];
        RasterWriter.WriteGeoTiff(path, 32, 32, [band, band, band], [0, 2, 0, 0, 0, -2]);
        using var ds = RasterDataset.Open(path);
        Assert.Null(ds.MetresPerPixel);
        Assert.Null(System.Text.Json.Nodes.JsonNode.Parse(SceneDescription.Json(path))!["pixel_size_metres"]);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 8, AllowMissingCrs = true });
        Assert.False(tiler.Info.GsdInMetres);
        Assert.Equal(2, tiler.Info.NativeGsd);
    }

    [Fact]
    public void DegreesAt60NorthMakeTilesSquareOnTheGround()
    {
        // Square pixels of 2e-6° at 60° N: 0.11 m wide and 0.22 m tall, so a tile spans twice as many columns as rows.
        const double step = 2e-6;
        var path = Write("north.tif", 600, 300, [10, step, 0, 60 + 150 * step, 0, -step], 4326);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 64, TargetGsd = 0.5 });
        var grid = tiler.Info.Grid;
        Assert.True(tiler.Info.GsdInMetres);
        Assert.Equal(0.5, tiler.Info.TileGsd);
        Assert.Equal(64 * 0.5 / (55_800 * step), grid.SourceTile, 1.0);
        Assert.Equal(64 * 0.5 / (111_412 * step), grid.SourceTileY, 1.0);
        foreach (var tile in tiler.Tiles())
        {
            var xs = tile.FootprintWgs84!.Ring.Select(p => p.X).ToArray();
            var ys = tile.FootprintWgs84!.Ring.Select(p => p.Y).ToArray();
            var width = (xs.Max() - xs.Min()) * 55_800;
            var height = (ys.Max() - ys.Min()) * 111_412;
            if (tile.Window.Width == grid.SourceTile && tile.Window.Height == grid.SourceTileY)
                Assert.InRange(width / height, 0.98, 1.02);
        }
        Assert.Contains("m/px (native ", SceneDescription.Text(tiler.Info, 64));
        Assert.Contains("measured at the scene's centre latitude", SceneDescription.Text(tiler.Info, 64));
    }
}
