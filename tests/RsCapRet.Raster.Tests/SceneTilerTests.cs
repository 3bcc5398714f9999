using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.Raster.Gdal;

namespace RsCapRet.Raster.Tests;

public sealed class SceneTilerTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-tiler-");
    public void Dispose() => _dir.Delete(true);
    private string TempPath(string name) => Path.Combine(_dir.FullName, name);

    [Fact]
    public void NaipGridIsFlushAtTheEdgesAndPlacesFootprints()
    {
        using var tiler = SceneTiler.Open(RasterDatasetTests.NaipSample);
        var info = tiler.Info;
        Assert.Equal([1, 2, 3], info.RgbBands);          // colour interpretation Gray/Undefined -> bands 1-3
        Assert.Equal((4, 5), (info.GridRows, info.GridCols)); // 723 x 934 px in 224-px tiles
        Assert.Equal(5.0, info.NativeGsd);
        var tiles = tiler.Tiles().ToList();
        // The right column and bottom row sit flush with the edges (x 710, y 499), overlapping their neighbours: no
        // padding, nothing skipped (the scene has no nodata).
        Assert.Equal(20, tiles.Count);
        Assert.Equal(0, tiler.SkippedTiles);
        Assert.All(tiles, t => Assert.Equal(224 * 224 * 3, t.Image.Pixels.Length));
        Assert.Equal(new PixelWindow(710, 499, 224, 224), tiles[^1].Window);
        Assert.Contains((485899.0 + 5 * 934, 5209246.0 - 5 * 723), tiles[^1].FootprintNative.Ring);   // the scene's corner, not beyond

        var first = tiles[0];
        Assert.Equal(new PixelWindow(0, 0, 224, 224), first.Window);
        Assert.Equal(26914, first.FootprintNative.Srid);
        Assert.Contains((485899.0, 5209246.0), first.FootprintNative.Ring);
        Assert.Contains((485899.0 + 1120, 5209246.0 - 1120), first.FootprintNative.Ring);
        // gdalinfo: Upper Left (485899.000, 5209246.000) ( 99d11' 8.17"W, 47d 2'11.69"N)
        var wgs = first.FootprintWgs84!;
        Assert.Equal(4326, wgs.Srid);
        Assert.Contains(wgs.Ring, p => Math.Abs(p.X - -(99 + 11 / 60.0 + 8.17 / 3600)) < 1e-5 && Math.Abs(p.Y - (47 + 2 / 60.0 + 11.69 / 3600)) < 1e-5);
        // Pixels are the stored bytes (Byte data is not stretched by default): 53 at (col 100, row 200) of band 1.
        var t00 = tiler.ReadTile(0, 0)!;
        Assert.Equal(53, t00.Image[200, 100, 0]);
    }

    [Fact]
    public void BandOverrideAndTargetGsdResample()
    {
        using var tiler = SceneTiler.Open(RasterDatasetTests.NaipSample, new TilingOptions { Bands = [4, 3, 2], TargetGsd = 10, MaxNodataFraction = 1 });
        Assert.Equal([4, 3, 2], tiler.Info.RgbBands);
        Assert.Equal(10.0, tiler.Info.TileGsd, 6);
        var t = tiler.ReadTile(0, 0)!;
        Assert.Equal(new PixelWindow(0, 0, 448, 448), t.Window);       // 224 output px at 10 m = 448 source px at 5 m
        Assert.Equal((2, 3), (tiler.Info.GridRows, tiler.Info.GridCols));
        Assert.Equal(new PixelWindow(486, 275, 448, 448), tiler.ReadTile(1, 2)!.Window);   // flush: 934 - 448, 723 - 448
        Assert.Contains((485899.0 + 2240, 5209246.0 - 2240), t.FootprintNative.Ring);
        Assert.True(t.Image.Pixels.Where((_, i) => i % 3 == 0).Average(x => (double)x) > 100); // NIR (band 4) is bright here
    }

    [Fact]
    public void UInt16IsStretchedExcludingNodata()
    {
        const int w = 64, h = 64;
        var band = new ushort[w * h];
        for (var i = 0; i < band.Length; i++) band[i] = (ushort)(1000 + i % w * 10); // 1000..1630 along each row
        for (var i = 0; i < w; i++) band[i] = 65535;                                  // first row: nodata
        var path = TempPath("u16.tif");
        RasterWriter.WriteGeoTiff(path, w, h, [band], [500000, 1, 0, 5200000, 0, -1], 32614, nodata: 65535);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 64 });
        var (lo, hi) = tiler.Info.StretchRanges[0];
        Assert.InRange(lo, 1000, 1020);   // 2nd percentile of 1000..1630, nodata excluded
        Assert.InRange(hi, 1600, 1630);
        var tile = Assert.Single(tiler.Tiles());
        Assert.Equal(1.0 / 64, tile.NodataFraction, 6);
        Assert.Equal(0, tile.Image[0, 10, 0]);            // nodata pixels are black
        Assert.Equal(0, tile.Image[5, 0, 0]);             // below the 2 % point -> 0
        Assert.Equal(255, tile.Image[5, 63, 1]);          // above the 98 % point -> 255 (band replicated)
        Assert.Equal(tile.Image[7, 30, 0], tile.Image[7, 30, 2]);
    }

    [Fact]
    public void Float32NanPixelsAreNodataAndAllNodataSceneIsEmpty()
    {
        const int w = 32, h = 32;
        var half = Enumerable.Range(0, w * h).Select(i => i % w < 24 ? float.NaN : i * 0.5f).ToArray(); // 75 % NaN
        var path = TempPath("f32.tif");
        RasterWriter.WriteGeoTiff(path, w, h, [half, half, half], [0, 1, 0, 0, 0, -1], 3857);
        using (var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 32 }))
        {
            Assert.Empty(tiler.Tiles());
            Assert.Equal(1, tiler.SkippedTiles);
            Assert.Equal((256L, 0L), (tiler.ValidPixels, tiler.CoveredPixels));
            Assert.Equal(0.0, tiler.Coverage);
        }
        using (var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 32, MaxNodataFraction = 0.8 }))
            Assert.Equal(0.75, Assert.Single(tiler.Tiles()).NodataFraction, 6);

        var empty = TempPath("empty.tif");
        RasterWriter.WriteGeoTiff(empty, 100, 100, [new byte[10_000]], [0, 1, 0, 0, 0, -1], 32614, nodata: 0);
        using var emptyTiler = SceneTiler.Open(empty, new TilingOptions { TileSize = 32 });
        Assert.Empty(emptyTiler.Tiles());
        Assert.Equal(16, emptyTiler.SkippedTiles);
        Assert.Null(emptyTiler.Coverage);   // no valid pixel
        Assert.Equal(0, emptyTiler.ValidPixels);
    }

    [Fact]
    public void RotatedGeotransformFootprintUsesAllSixTerms()
    {
        var path = TempPath("rotated.tif");
        double[] gt = [1000, 2, 0.5, 5000, 0.25, -2];
        RasterWriter.WriteGeoTiff(path, 16, 16, [Enumerable.Repeat((byte)100, 256).ToArray()], gt, 32633);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 16 });
        var tile = Assert.Single(tiler.Tiles());
        (double, double) At(double px, double py) => (gt[0] + px * gt[1] + py * gt[2], gt[3] + px * gt[4] + py * gt[5]);
        foreach (var corner in new[] { At(0, 0), At(16, 0), At(16, 16), At(0, 16) })
            Assert.Contains(corner, tile.FootprintNative.Ring);
        Assert.Equal(5, tile.FootprintNative.Ring.Count);
        Assert.Equal(tile.FootprintNative.Ring[0], tile.FootprintNative.Ring[^1]);
        Assert.All(tile.FootprintWgs84!.Ring, p => Assert.InRange(p.X, 10, 20)); // UTM 33N lies at 9-21°E
    }

    [Fact]
    public void SceneWithoutCrsIsRejectedUnlessAllowed()
    {
        var path = TempPath("nocrs.tif");
        RasterWriter.WriteGeoTiff(path, 16, 16, [new byte[256]]);
        var ex = Assert.Throws<RasterException>(() => SceneTiler.Open(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("no coordinate reference system", ex.Message);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 16, AllowMissingCrs = true });
        Assert.Null(tiler.Info.FootprintWgs84);
        Assert.Equal(0, tiler.Info.FootprintNative.Srid);
    }

    [Fact]
    public void AlphaBandMasksPixels()
    {
        const int n = 16;
        var rgb = Enumerable.Range(0, 3).Select(_ => Enumerable.Repeat((byte)120, n * n).ToArray()).ToArray();
        var alpha = Enumerable.Range(0, n * n).Select(i => (byte)(i / n < 4 ? 0 : 255)).ToArray(); // top quarter transparent
        var path = TempPath("rgba.tif");
        RasterWriter.WriteGeoTiff(path, n, n, [.. rgb, alpha], [0, 1, 0, 0, 0, -1], 32614,
            colorInterpretations: [ColorInterpretation.Red, ColorInterpretation.Green, ColorInterpretation.Blue, ColorInterpretation.Alpha]);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = n });
        Assert.Equal(4, tiler.Info.AlphaBand);
        Assert.Equal([1, 2, 3], tiler.Info.RgbBands);
        var tile = Assert.Single(tiler.Tiles());
        Assert.Equal(0.25, tile.NodataFraction, 6);
        Assert.Equal(0, tile.Image[0, 0, 0]);
        Assert.Equal(120, tile.Image[8, 8, 0]);
    }

    [Fact]
    public void RgbSceneUsesColourInterpretationAndOverlapShrinksStride()
    {
        var scene = Path.Combine(RepositoryPaths.SharedDirectory(), "data", "scenes", "deepforest_test_tiled_epsg28992_0.25m.tif");
        using var tiler = SceneTiler.Open(scene, new TilingOptions { Overlap = 24 });
        Assert.Equal(28992, tiler.Info.Crs!.Epsg);
        Assert.Equal([1, 2, 3], tiler.Info.RgbBands);
        Assert.Equal((5, 5), (tiler.Info.GridRows, tiler.Info.GridCols)); // 1000 px, tile 224, stride 200
        Assert.Equal(new PixelWindow(200, 400, 224, 224), tiler.ReadTile(2, 1)!.Window);
        Assert.Equal(new PixelWindow(776, 776, 224, 224), tiler.ReadTile(4, 4)!.Window);   // flush: 1000 - 224
    }

    [Fact]
    public void ReadRgbDecodesDatasetJpeg()
    {
        var image = RasterImage.ReadRgb(Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images", "1.jpg"));
        Assert.Equal((256, 256), (image.Width, image.Height));
        Assert.True(image.Pixels.Distinct().Count() > 50);
    }

    [Fact]
    public void BadOptionsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SceneTiler.Open(RasterDatasetTests.NaipSample, new TilingOptions { Overlap = 224 }));
        Assert.Throws<ArgumentException>(() => SceneTiler.Open(RasterDatasetTests.NaipSample, new TilingOptions { Bands = [1, 2] }));
        var ex = Assert.Throws<RasterException>(() => SceneTiler.Open(RasterDatasetTests.NaipSample, new TilingOptions { Bands = [1, 2, 7] }));
        Assert.Contains("has no band 7", ex.Message);
    }

    [Fact]
    public void SceneDeclaringAHugeSizeFailsBeforeAnythingIsRead()
    {
        // 200000 x 200000 px declared, no pixel data behind it (as a sparse GeoTIFF would be).
        var vrt = TempPath("huge.vrt");
        File.WriteAllText(vrt, """
            <VRTDataset rasterXSize="200000" rasterYSize="200000">
              <SRS>EPSG:32610</SRS>
              <GeoTransform>500000, 0.3, 0, 4200000, 0, -0.3</GeoTransform>
              <VRTRasterBand dataType="Byte" band="1"/><VRTRasterBand dataType="Byte" band="2"/><VRTRasterBand dataType="Byte" band="3"/>
            </VRTDataset>
            """);
        var e = Assert.Throws<RasterException>(() => SceneTiler.Open(vrt));
        Assert.Contains("would be 797,449 tiles of 224 px, more than the limit of 250,000 per scene", e.Message);
        Assert.Contains("RSCAPRET_MAX_GRID_TILES", e.Message);
        // A coarser plan is fine (the ratio limit lifted: 111 GB declared in a 0.3 KB file is a decode bomb's shape).
        using var allowed = SceneTiler.Open(vrt, new TilingOptions { MaxGridTiles = 1_000_000, TargetGsd = 0.3 * 10, MaxDecodeRatio = long.MaxValue });
        Assert.Equal(90 * 90, allowed.Info.GridRows * allowed.Info.GridCols);
    }

    [Fact]
    public void TargetGsdFarFinerThanNativeIsRefused()
    {
        var e = Assert.Throws<RasterException>(() => SceneTiler.Open(RasterDatasetTests.NaipSample, new TilingOptions { TargetGsd = 1e-9 }));
        Assert.Contains("--gsd 1E-09 is more than 4x finer than the native 5 m/px", e.Message);
        using var ok = SceneTiler.Open(RasterDatasetTests.NaipSample, new TilingOptions { TargetGsd = 2.5 });
        Assert.Equal(2.5, ok.Info.TileGsd, 6);
    }
}
