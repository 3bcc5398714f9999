using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.TestSupport;

namespace RsCapRet.Raster.Tests;

/// <summary>
/// Every valid pixel lies under a stored tile: flush last column and row, one padded tile for a dimension smaller than
/// a tile, skips only for real nodata, and the coverage the tiler counts. On real rasters whose sizes are not multiples
/// of the tile, and one smaller than a tile.
/// </summary>
public sealed class EdgeTileTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-edges-");
    public void Dispose() => _dir.Delete(true);

    private static string Scene(string name) => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "scenes", name);

    /// <summary>The default model's training GSD (models/default/rscapret.json): what its plan resamples fine scenes to.</summary>
    private const double ModelGsd = 0.34285714285714286;

    /// <summary>A window of a real scene, cut with gdal_translate (CRS, geotransform and nodata kept).</summary>
    private async Task<string> Crop(string scene, int x, int y, int w, int h)
    {
        var path = Path.Combine(_dir.FullName, $"{Path.GetFileNameWithoutExtension(scene)}_{w}x{h}.tif");
        var (code, _, err) = await TestProcess.RunAsync("gdal_translate", ["-q", "-srcwin", $"{x}", $"{y}", $"{w}", $"{h}", scene, path]);
        Assert.True(code == 0, $"gdal_translate failed: {err}");
        return path;
    }

    /// <summary>
    /// Enumerates the tiles and checks what holds for any scene: windows inside the raster and equal to their native
    /// footprints, the union of the footprints over the scene footprint, nodata fractions of real pixels only.
    /// </summary>
    private static List<RasterTile> TilesChecked(SceneTiler tiler, out double footprintCover)
    {
        var (w, h, gt) = tiler.Grid;
        var tiles = tiler.Tiles().ToList();
        foreach (var t in tiles)
        {
            var win = t.Window;
            Assert.True(win.X >= 0 && win.Y >= 0 && win.X + win.Width <= w && win.Y + win.Height <= h, $"{win} outside {w}x{h}");
            var (xs, ys) = (t.FootprintNative.Ring.Select(p => p.X).ToArray(), t.FootprintNative.Ring.Select(p => p.Y).ToArray());
            Assert.Equal(gt[0] + win.X * gt[1], xs.Min(), 6);
            Assert.Equal(gt[0] + (win.X + win.Width) * gt[1], xs.Max(), 6);
            Assert.Equal(gt[3] + win.Y * gt[5], ys.Max(), 6);
            Assert.Equal(gt[3] + (win.Y + win.Height) * gt[5], ys.Min(), 6);
            Assert.Equal(tiler.Info.Grid.OutputTile * tiler.Info.Grid.OutputTile * 3, t.Image.Pixels.Length);
            Assert.InRange(t.NodataFraction, 0, 1);
        }
        footprintCover = UnionArea(tiles.Select(t => Box(t.FootprintNative))) / Area(Box(tiler.Info.FootprintNative));
        return tiles;
    }

    private static (double X0, double Y0, double X1, double Y1) Box(Footprint f) =>
        (f.Ring.Min(p => p.X), f.Ring.Min(p => p.Y), f.Ring.Max(p => p.X), f.Ring.Max(p => p.Y));

    private static double Area((double X0, double Y0, double X1, double Y1) b) => (b.X1 - b.X0) * (b.Y1 - b.Y0);

    /// <summary>Exact area of a union of axis-parallel rectangles (north-up footprints), by coordinate compression.</summary>
    private static double UnionArea(IEnumerable<(double X0, double Y0, double X1, double Y1)> boxes)
    {
        var list = boxes.ToList();
        var xs = list.SelectMany(b => new[] { b.X0, b.X1 }).Distinct().Order().ToArray();
        var ys = list.SelectMany(b => new[] { b.Y0, b.Y1 }).Distinct().Order().ToArray();
        double area = 0;
        for (var i = 0; i + 1 < xs.Length; i++)
            for (var j = 0; j + 1 < ys.Length; j++)
            {
                double cx = (xs[i] + xs[i + 1]) / 2, cy = (ys[j] + ys[j + 1]) / 2;
                if (list.Any(b => b.X0 <= cx && cx <= b.X1 && b.Y0 <= cy && cy <= b.Y1)) area += (xs[i + 1] - xs[i]) * (ys[j + 1] - ys[j]);
            }
        return area;
    }

    [Fact]
    public void NaipAtItsOwnGsdIsCoveredToTheEdgesWithoutSkips()
    {
        // 934 x 723 px in 224-px tiles: 5 x 4, the last column flush at x = 710 and the last row at y = 499.
        using var tiler = SceneTiler.Open(RasterDatasetTests.NaipSample);
        Assert.Equal((4, 5), (tiler.Info.GridRows, tiler.Info.GridCols));
        Assert.Null(tiler.Coverage);                      // not before the tiles have been read
        var tiles = TilesChecked(tiler, out var cover);
        Assert.Equal(20, tiles.Count);
        Assert.Equal(0, tiler.SkippedTiles);
        Assert.True(cover >= 0.995, $"footprints cover {cover:P3}");
        Assert.Equal(1.0, cover, 9);
        Assert.Equal(934L * 723, tiler.ValidPixels);      // no pixel of bands 1-3 is the declared nodata 0
        Assert.Equal(1.0, tiler.Coverage!.Value, 9);
        Assert.Equal(new PixelWindow(710, 0, 224, 224), tiles.Single(t => (t.GridRow, t.GridCol) == (0, 4)).Window);
        Assert.Equal(new PixelWindow(672, 499, 224, 224), tiles.Single(t => (t.GridRow, t.GridCol) == (3, 3)).Window);
        Assert.Equal(new PixelWindow(710, 499, 224, 224), tiles[^1].Window);
        Assert.All(tiles, t => Assert.Equal(0, t.NodataFraction));
        Assert.Equal((186, 173), (tiler.Info.Grid.LastColumnOverlap, tiler.Info.Grid.LastRowOverlap));
    }

    [Fact]
    public void NaipResampledToACoarserGsdIsCoveredToo()
    {
        // 10 m: a tile is 448 source px; 934 -> 3 columns (0, 448, 486), 723 -> 2 rows (0, 275).
        using var tiler = SceneTiler.Open(RasterDatasetTests.NaipSample, new TilingOptions { TargetGsd = 10 });
        var tiles = TilesChecked(tiler, out var cover);
        Assert.Equal((2, 3, 6, 0), (tiler.Info.GridRows, tiler.Info.GridCols, tiles.Count, tiler.SkippedTiles));
        Assert.Equal(new PixelWindow(486, 275, 448, 448), tiles[^1].Window);
        Assert.True(cover >= 0.995, $"footprints cover {cover:P3}");
        Assert.True(tiler.Coverage >= 0.995, $"coverage {tiler.Coverage:P3}");
    }

    [Fact]
    public async Task AerialCropAtTheModelGsdIsCoveredWithoutSkips()
    {
        // 1000 x 700 px of the 0.25 m photo at the model's 0.343 m: 307-px windows, 4 columns and 3 rows, both flush.
        var crop = await Crop(Scene("deepforest_test_tiled_epsg28992_0.25m.tif"), 0, 150, 1000, 700);
        using var tiler = SceneTiler.Open(crop, new TilingOptions { TargetGsd = ModelGsd });
        Assert.Equal(307, tiler.Info.Grid.SourceTile);
        var tiles = TilesChecked(tiler, out var cover);
        Assert.Equal((3, 4, 12, 0), (tiler.Info.GridRows, tiler.Info.GridCols, tiles.Count, tiler.SkippedTiles));
        Assert.Equal(new PixelWindow(693, 393, 307, 307), tiles[^1].Window);
        Assert.True(cover >= 0.995, $"footprints cover {cover:P3}");
        Assert.True(tiler.Coverage >= 0.995, $"coverage {tiler.Coverage:P3}");
        Assert.Equal(1000L * 700, tiler.ValidPixels);
    }

    [Fact]
    public async Task SceneSmallerThanATileIsOnePaddedTileOfItsRealPixels()
    {
        // 150 x 120 px of the 0.1 m NEON scene: far less than one 224-px tile, natively or at the model's GSD.
        var crop = await Crop(Scene("neon_OSBS_029_utm17n_0.1m.tif"), 100, 100, 150, 120);
        // The scene declares 255 nodata, and a few saturated pixels are 255 (no 150 x 120 window of it is free of them).
        double realNodata;
        using (var ds = RasterDataset.Open(crop))
        {
            var bands = Enumerable.Range(1, 3).Select(b => { var buf = new byte[150 * 120]; ds.Read(b, new PixelWindow(0, 0, 150, 120), buf.AsSpan(), 150, 120); return buf; }).ToArray();
            realNodata = Enumerable.Range(0, 150 * 120).Count(i => bands.Any(b => b[i] == 255)) / (150.0 * 120);
        }
        Assert.InRange(realNodata, 0.001, 0.02);
        foreach (var (gsd, content) in new (double?, (int W, int H))[] { (null, (150, 120)), (ModelGsd, (44, 35)) })
        {
            using var tiler = SceneTiler.Open(crop, new TilingOptions { TargetGsd = gsd });
            var tile = Assert.Single(TilesChecked(tiler, out var cover));
            Assert.Equal(0, tiler.SkippedTiles);
            Assert.Equal(new PixelWindow(0, 0, 150, 120), tile.Window);   // the real pixels only, never ground outside
            Assert.Equal(1.0, cover, 9);
            Assert.Equal(1.0, tiler.Coverage!.Value, 9);
            // Of the real pixels only (padding is not nodata): exactly at the native GSD, near it when resampled.
            if (gsd is null) Assert.Equal(realNodata, tile.NodataFraction, 9);
            else Assert.InRange(tile.NodataFraction, 0, 3 * realNodata);
            Assert.Equal(content, (tiler.Info.Grid.OutputWidth(150), tiler.Info.Grid.OutputHeight(120)));
            // Mirror padding (SceneTiler.Padding): beyond the real pixels, their reflection at the edge.
            Assert.Equal(TilePadding.Mirror, SceneTiler.Padding);
            var (w, h) = content;
            for (var k = 0; k < 3; k++)
                for (var c = 0; c < 3; c++)
                {
                    Assert.Equal(tile.Image[10, w - 1 - k, c], tile.Image[10, w + k, c]);
                    Assert.Equal(tile.Image[h - 1 - k, 10, c], tile.Image[h + k, 10, c]);
                }
        }
    }

    [Fact]
    public void DeclaredNodataIsSkippedAndCountedWhereItIsAndCoverageCountsKeptNeighbours()
    {
        // 500 x 300 px, tiles of 128: columns at 0, 128, 256 and (flush) 372; rows at 0, 128 and (flush) 172.
        // Nodata (declared 0) at x in [180, 372): column 1 is 59 % nodata and column 2 91 %: both skipped in every row.
        // Column 2's valid strip x in [372, 384) lies under the kept last column, so it counts as covered; column 1's
        // valid strip [128, 180) lies under no kept tile.
        const int w = 500, h = 300;
        var band = new byte[w * h];
        for (var i = 0; i < band.Length; i++) band[i] = i % w is >= 180 and < 372 ? (byte)0 : (byte)(1 + i % 200);
        var path = Path.Combine(_dir.FullName, "nodata.tif");
        RasterWriter.WriteGeoTiff(path, w, h, [band, band, band], [600000, 1, 0, 4100000, 0, -1], 32617, nodata: 0);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 128 });
        var tiles = TilesChecked(tiler, out _);
        Assert.Equal((3, 4), (tiler.Info.GridRows, tiler.Info.GridCols));
        Assert.Equal(6, tiler.SkippedTiles);
        Assert.Equal([0, 3], tiles.Select(t => t.GridCol).Distinct().Order());
        Assert.Equal((w - 192L) * h, tiler.ValidPixels);
        Assert.Equal(256L * h, tiler.CoveredPixels);
        Assert.Equal(256.0 / 308, tiler.Coverage!.Value, 9);

        // More tolerance keeps column 1 (59 % nodata); column 2 (91 %) is still skipped, and its valid strip still counts.
        using var tolerant = SceneTiler.Open(path, new TilingOptions { TileSize = 128, MaxNodataFraction = 0.6 });
        Assert.Equal(9, tolerant.Tiles().Count());
        Assert.Equal(3, tolerant.SkippedTiles);
        Assert.Equal(1.0, tolerant.Coverage!.Value, 9);
    }

    [Fact]
    public void ANarrowSceneIsOneRowOfFullColumnsPaddedBelow()
    {
        // 300 x 40 px at tile 64: columns 0, 64, 128, 192 and flush 236; one row of 40 real px padded to 64.
        const int w = 300, h = 40;
        var band = Enumerable.Range(0, w * h).Select(i => (byte)(10 + i % w % 200)).ToArray();
        var path = Path.Combine(_dir.FullName, "strip.tif");
        RasterWriter.WriteGeoTiff(path, w, h, [band, band, band], [600000, 1, 0, 4100000, 0, -1], 32617);
        using var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = 64 });
        var tiles = TilesChecked(tiler, out var cover);
        Assert.Equal((1, 5, 5, 0), (tiler.Info.GridRows, tiler.Info.GridCols, tiles.Count, tiler.SkippedTiles));
        Assert.Equal(new PixelWindow(236, 0, 64, 40), tiles[^1].Window);
        Assert.Equal(1.0, cover, 9);
        Assert.Equal(1.0, tiler.Coverage!.Value, 9);
        Assert.All(tiles, t => Assert.Equal(t.Image[39 - 5, 7, 0], t.Image[40 + 5, 7, 0]));   // mirrored below the last real row
    }

    [Fact]
    public void GridCountsHaveNoDuplicateTileAtExactMultiples()
    {
        var exact = new TileGrid(448, 224, 224, 224, 224, TilePadding.Mirror);
        Assert.Equal((2, 1), (exact.Cols, exact.Rows));
        Assert.Equal([0, 224], Enumerable.Range(0, exact.Cols).Select(c => exact.Column(c).Start));
        Assert.Equal(0, exact.LastColumnOverlap);
        var overlap = new TileGrid(424, 100, 224, 200, 224, TilePadding.Mirror);  // stride 200: 0 and 200 end exactly at 424
        Assert.Equal(2, overlap.Cols);
        Assert.Equal(24, overlap.LastColumnOverlap);
        var small = new TileGrid(100, 50, 224, 224, 224, TilePadding.Mirror);
        Assert.Equal(new PixelWindow(0, 0, 100, 50), small.Window(0, 0));
        Assert.Equal((100, 50), (small.OutputWidth(100), small.OutputHeight(50)));
    }

    [Theory]
    [InlineData(448, 300, 224, null)]            // every tile whole
    [InlineData(150, 120, 224, null)]            // 36 % of the input: the padding measurement's 150x120 keeps 0.82 of the cosine
    [InlineData(112, 112, 224, null)]            // exactly a quarter
    [InlineData(10, 10, 224, "the scene is 10 x 10 px, so each tile holds only 10 x 10 of the model's 224 x 224 px and the rest is mirror padding: captions and search results on it are unreliable")]
    [InlineData(2000, 30, 224, "the scene is 2000 x 30 px, so each tile holds only 224 x 30 of the model's 224 x 224 px")]   // a long strip
    [InlineData(7, 7, 7, null)]                  // 7 px resampled to a whole 224-px tile (a coarse tile GSD): not padding
    public void ATileThatIsMostlyPaddingIsWarnedAbout(int width, int height, int sourceTile, string? warning)
    {
        var grid = new TileGrid(width, height, sourceTile, sourceTile, 224, TilePadding.Mirror);
        if (warning is null) Assert.Null(grid.SmallTileWarning);
        else Assert.StartsWith(warning, grid.SmallTileWarning);
        Assert.Equal(warning is null, grid.ContentShare >= TileGrid.SmallContentShare);
    }

    [Fact]
    public void PaddingModesFillBeyondTheContent()
    {
        // 2 x 1 content: red-ish then green-ish, padded to 5 x 2.
        var content = new RgbImage(2, 1, [10, 20, 30, 40, 50, 60]);
        byte R(RgbImage i, int row, int col) => i[row, col, 0];
        var zero = TilePadder.Pad(content, 5, 2, TilePadding.Zero);
        Assert.Equal([10, 40, 0, 0, 0], Enumerable.Range(0, 5).Select(c => R(zero, 0, c)));
        var edge = TilePadder.Pad(content, 5, 2, TilePadding.Edge);
        Assert.Equal([10, 40, 40, 40, 40], Enumerable.Range(0, 5).Select(c => R(edge, 0, c)));
        Assert.Equal([10, 40, 40, 40, 40], Enumerable.Range(0, 5).Select(c => R(edge, 1, c)));
        var mirror = TilePadder.Pad(content, 5, 2, TilePadding.Mirror);
        Assert.Equal([10, 40, 40, 10, 10], Enumerable.Range(0, 5).Select(c => R(mirror, 0, c)));
        Assert.Equal([10, 40, 40, 10, 10], Enumerable.Range(0, 5).Select(c => R(mirror, 1, c)));
        var mean = TilePadder.Pad(content, 5, 2, TilePadding.Mean);
        Assert.Equal([10, 40, 25, 25, 25], Enumerable.Range(0, 5).Select(c => R(mean, 0, c)));
        Assert.Equal((byte)35, mean[1, 0, 1]);
        // The mean of valid pixels only: an invalid (black nodata) pixel does not darken it.
        var masked = TilePadder.Pad(content, 5, 2, TilePadding.Mean, [true, false]);
        Assert.Equal(10, R(masked, 1, 3));
    }
}
