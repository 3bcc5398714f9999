using RsCapRet.Raster;

namespace RsCapRet.Raster.Tests;

/// <summary>A warped scene's black collar with no nodata declared is data to GDAL: the scene is warned about.</summary>
public sealed class CollarWarningTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-collar-");
    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>32 x 32 RGB, UTM 14N: a grey diamond (a rotated image) on black, or grey all over.</summary>
    private string Scene(string name, bool collar, double? nodata = null, byte corner = 0)
    {
        var bands = Enumerable.Range(0, 3).Select(_ =>
        {
            var band = new byte[32 * 32];
            for (var y = 0; y < 32; y++)
                for (var x = 0; x < 32; x++)
                    band[y * 32 + x] = !collar || Math.Abs(x - 15.5) + Math.Abs(y - 15.5) < 16 ? (byte)120 : (byte)0;
            band[32 * 32 - 1] = collar ? corner : band[32 * 32 - 1];
            return band;
        }).ToArray();
        var path = Path.Combine(_dir.FullName, name);
        RasterWriter.WriteGeoTiff(path, 32, 32, bands, [485899, 5, 0, 5209246, 0, -5], 26914, nodata: nodata);
        return path;
    }

    [Fact]
    public void BlackCornersWithoutNodataAreWarnedAboutWithGdalsCommand()
    {
        using (var tiler = SceneTiler.Open(Scene("collar.tif", collar: true), new TilingOptions { TileSize = 16 }))
        {
            var warning = Assert.Single(tiler.Warnings());
            Assert.Contains("its four corners are black", warning);
            Assert.Contains("gdal_translate -a_nodata 0", warning);
        }
        // Declared: the collar is nodata, nothing to warn about.
        using (var declared = SceneTiler.Open(Scene("declared.tif", collar: true, nodata: 0), new TilingOptions { TileSize = 16 }))
            Assert.Empty(declared.Warnings());
        // One corner that is not black: an image, not a collar.
        using (var lit = SceneTiler.Open(Scene("lit.tif", collar: true, corner: 7), new TilingOptions { TileSize = 16 }))
            Assert.Empty(lit.Warnings());
        using (var plain = SceneTiler.Open(Scene("plain.tif", collar: false), new TilingOptions { TileSize = 16 }))
            Assert.Empty(plain.Warnings());
    }
}
