using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.Raster.Gdal;

namespace RsCapRet.Raster.Tests;

public class RasterDatasetTests
{
    internal static string NaipSample => Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes", "naip_m_4709963_se_14_1_20200831.tif");

    [Fact]
    public void NaipSampleMatchesGdalinfo()
    {
        using var ds = RasterDataset.Open(NaipSample);
        Assert.Equal("GTiff", ds.DriverName);
        Assert.Equal(934, ds.Width);
        Assert.Equal(723, ds.Height);
        Assert.Equal(4, ds.Bands.Count);
        Assert.All(ds.Bands, b => Assert.Equal(GdalDataType.Byte, b.DataType));
        Assert.All(ds.Bands, b => Assert.Equal(0.0, b.NoData));
        Assert.Equal(ColorInterpretation.Gray, ds.Bands[0].ColorInterpretation);
        Assert.Equal(ColorInterpretation.Undefined, ds.Bands[1].ColorInterpretation);
        // gdalinfo: Origin = (485899.0, 5209246.0), Pixel Size = (5.0, -5.0)
        Assert.Equal(new[] { 485899.0, 5.0, 0.0, 5209246.0, 0.0, -5.0 }, ds.GeoTransform);
        // gdalinfo: PROJCRS["NAD83 / UTM zone 14N", ..., ID["EPSG",26914]]
        Assert.Equal(26914, ds.Crs!.Epsg);
        Assert.Contains("NAD83 / UTM zone 14N", ds.Crs.Wkt);
    }

    [Fact]
    public void WindowedReadMatchesGdalTranslate()
    {
        // gdal_translate -srcwin 100 200 3 2 -b 1 -> 53 56 62 / 54 56 70 ; -b 4 -> 196 196 193 / 196 197 195
        using var ds = RasterDataset.Open(NaipSample);
        var buf = new byte[6];
        ds.Read(1, new PixelWindow(100, 200, 3, 2), buf.AsSpan(), 3, 2);
        Assert.Equal(new byte[] { 53, 56, 62, 54, 56, 70 }, buf);
        ds.Read(4, new PixelWindow(100, 200, 3, 2), buf.AsSpan(), 3, 2);
        Assert.Equal(new byte[] { 196, 196, 193, 196, 197, 195 }, buf);
        // The same window read as float (type conversion by GDAL).
        var f = new float[6];
        ds.Read(1, new PixelWindow(100, 200, 3, 2), f.AsSpan(), 3, 2);
        Assert.Equal(new float[] { 53, 56, 62, 54, 56, 70 }, f);
    }

    [Fact]
    public void ResampledReadAveragesThroughGdal()
    {
        using var ds = RasterDataset.Open(NaipSample);
        var full = new byte[4];
        ds.Read(1, new PixelWindow(100, 200, 2, 2), full.AsSpan(), 2, 2);
        var one = new byte[1];
        ds.Read(1, new PixelWindow(100, 200, 2, 2), one.AsSpan(), 1, 1, ResampleAlgorithm.Average);
        // GDAL may answer from the file's (nearest-resampled) overview, so only the range is certain here;
        // exact averaging is checked on a raster without overviews in SceneTilerTests.
        Assert.InRange(one[0], full.Min(), full.Max());
    }

    [Fact]
    public void MissingFileNamesThePath()
    {
        var path = Path.Combine(Path.GetTempPath(), "no-such-scene-" + Guid.NewGuid().ToString("N") + ".tif");
        var ex = Assert.Throws<RasterException>(() => RasterDataset.Open(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public void ASymlinkLoopOrAFolderIsNamedForWhatItIs()
    {
        var dir = Directory.CreateTempSubdirectory("rscapret-links-");
        try
        {
            var a = Path.Combine(dir.FullName, "a.tif");
            var b = Path.Combine(dir.FullName, "b.tif");
            File.CreateSymbolicLink(a, b);
            File.CreateSymbolicLink(b, a);
            var loop = Assert.Throws<RasterException>(() => RasterDataset.Open(a));
            Assert.Equal($"{a}: is a symbolic link that leads to no file (a loop or a missing target)", loop.Message);
            var folder = Assert.Throws<RasterException>(() => RasterDataset.Open(dir.FullName));
            Assert.Equal($"{dir.FullName}: is a directory, not a raster file", folder.Message);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void NonRasterFileNamesThePathAndGdalsReason()
    {
        var path = Path.Combine(Path.GetTempPath(), "not-a-raster-" + Guid.NewGuid().ToString("N") + ".tif");
        File.WriteAllText(path, "this is a text file, not an image\n");
        try
        {
            var ex = Assert.Throws<RasterException>(() => RasterDataset.Open(path));
            Assert.Contains(path, ex.Message);
            Assert.Contains("cannot open it as a raster", ex.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void TruncatedGeoTiffIsAClearError()
    {
        var dir = Directory.CreateTempSubdirectory("rscapret-raster-");
        try
        {
            var path = Path.Combine(dir.FullName, "truncated.tif");
            var bytes = File.ReadAllBytes(NaipSample);
            File.WriteAllBytes(path, bytes[..(bytes.Length / 3)]);
            var ex = Record.Exception(() =>
            {
                using var tiler = SceneTiler.Open(path);
                foreach (var _ in tiler.Tiles()) { }
            });
            var rex = Assert.IsType<RasterException>(ex);
            Assert.Contains(path, rex.Message);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void UtfEightPathsOpen()
    {
        var dir = Directory.CreateTempSubdirectory("rscapret-ünïcødé-");
        try
        {
            var path = Path.Combine(dir.FullName, "scène-ø.tif");
            File.Copy(NaipSample, path);
            using var ds = RasterDataset.Open(path);
            Assert.Equal(934, ds.Width);
        }
        finally { dir.Delete(true); }
    }
}
