namespace RsCapRet.Raster.Tests;

/// <summary>What `inspect` prints of a raster: counts in the singular where they are one, a grey band's stretch once.</summary>
public sealed class SceneDescriptionTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-describe-");
    public void Dispose() => _dir.Delete(true);

    private string Write(string name, int w, int h, int bands)
    {
        var band = Enumerable.Range(0, w * h).Select(i => (byte)(20 + i % w % 200)).ToArray();
        var path = Path.Combine(_dir.FullName, name);
        RasterWriter.WriteGeoTiff(path, w, h, Enumerable.Repeat(band, bands).ToArray(), [500_000, 0.5, 0, 4_200_000, 0, -0.5], 32610);
        return path;
    }

    [Theory]
    // One band, one tile: singular, and the grey band's stretch once (not for R, G and B).
    [InlineData(40, 30, 1, "size: 40 x 30 px, 1 band; RGB from bands 1,1,1\n", "grid: 1 row x 1 col of 64-px tiles", "stretch: band 1 0..255\n")]
    [InlineData(200, 140, 3, "size: 200 x 140 px, 3 bands; RGB from bands 1,2,3\n", "grid: 3 rows x 4 cols of 64-px tiles",
        "stretch: band 1 0..255; band 2 0..255; band 3 0..255\n")]
    public void CountsAgreeWithTheirNumber(int width, int height, int bands, string size, string grid, string stretch)
    {
        using var tiler = SceneTiler.Open(Write($"scene-{bands}.tif", width, height, bands), new TilingOptions { TileSize = 64 });
        var text = SceneDescription.Text(tiler.Info, 64);
        Assert.Contains(size, text);
        Assert.Contains(grid, text);
        Assert.Contains(stretch, text);
    }
}
