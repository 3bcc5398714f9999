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

    [Fact]
    public void OneBandOneTileSceneReadsInTheSingular()
    {
        using var tiler = SceneTiler.Open(Write("grey.tif", 40, 30, 1), new TilingOptions { TileSize = 64 });
        var text = SceneDescription.Text(tiler.Info, 64);
        Assert.Contains("size: 40 x 30 px, 1 band; RGB from bands 1,1,1\n", text);
        Assert.Contains("grid: 1 row x 1 col of 64-px tiles", text);
        Assert.Contains("stretch: band 1 0..255\n", text);   // once, not for R, G and B
    }

    [Fact]
    public void SeveralBandsAndTilesReadInThePlural()
    {
        using var tiler = SceneTiler.Open(Write("rgb.tif", 200, 140, 3), new TilingOptions { TileSize = 64 });
        var text = SceneDescription.Text(tiler.Info, 64);
        Assert.Contains("size: 200 x 140 px, 3 bands; RGB from bands 1,2,3\n", text);
        Assert.Contains("grid: 3 rows x 4 cols of 64-px tiles", text);
        Assert.Contains("stretch: band 1 0..255; band 2 0..255; band 3 0..255\n", text);
    }
}
