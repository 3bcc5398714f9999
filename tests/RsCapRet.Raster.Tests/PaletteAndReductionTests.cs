using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.TestSupport;

namespace RsCapRet.Raster.Tests;

/// <summary>
/// Paletted rasters (8-bit PNGs from web optimisers, colour-table TIFFs), as a query or chat image and as a scene, read
/// through their colour table with reduced pixels averaging colours; and query images reduced by averaging.
/// </summary>
public sealed class PaletteAndReductionTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-palette-");
    public void Dispose() => _dir.Delete(recursive: true);

    private static readonly (byte R, byte G, byte B)[] Colours = [(0, 0, 0), (255, 0, 0), (200, 100, 40)];

    /// <summary>8 x 8, a checkerboard of entries 0 and 2 on the left half, entry 1 on the right half.</summary>
    private static byte[] Indices()
    {
        var indices = new byte[64];
        for (var y = 0; y < 8; y++)
            for (var x = 0; x < 8; x++)
                indices[y * 8 + x] = x >= 4 ? (byte)1 : (byte)((x + y) % 2 == 0 ? 0 : 2);
        return indices;
    }

    [Fact]
    public void APalettedPngIsReadThroughItsColourTableAndItsColoursAveragedWhenReduced()
    {
        var png = CraftedPngs.Paletted(8, 8, Indices(), Colours);
        var full = RasterImage.ReadUploadedRgb(png, 1_000_000, 4096, "logo.png");
        Assert.Equal((8, 8), (full.Width, full.Height));
        Assert.Equal((0, 0, 0), Pixel(full, 0, 0));
        Assert.Equal((200, 100, 40), Pixel(full, 0, 1));
        Assert.Equal((255, 0, 0), Pixel(full, 0, 7));

        // Reduced to 2 x 2: each output pixel averages the colours of its 4 x 4 block, never an index between two
        // entries (the mean of indices 0 and 2 would be entry 1, red).
        var reduced = RasterImage.ReadUploadedRgb(png, 1_000_000, 2, "logo.png");
        Assert.Equal((2, 2), (reduced.Width, reduced.Height));
        Assert.Equal((100, 50, 20), Pixel(reduced, 0, 0));
        Assert.Equal((100, 50, 20), Pixel(reduced, 1, 0));
        Assert.Equal((255, 0, 0), Pixel(reduced, 1, 1));

        // By a ratio under two (12 px to 8): each pixel still mixes the entries under it, about half and half, where
        // a plain nearest read would keep one entry (0 or 200 in red).
        var board = new byte[144];
        for (var i = 0; i < board.Length; i++) board[i] = (byte)((i / 12 + i % 12) % 2 == 0 ? 0 : 2);
        var mixed = RasterImage.ReadUploadedRgb(CraftedPngs.Paletted(12, 12, board, Colours), 1_000_000, 8, "board.png");
        Assert.Equal((8, 8), (mixed.Width, mixed.Height));
        for (var y = 0; y < 8; y++)
            for (var x = 0; x < 8; x++)
                Assert.InRange(mixed[y, x, 0], 70, 130);
    }

    [Fact]
    public void AColourTableTiffReadsAsItsColours()
    {
        var path = Path.Combine(_dir.FullName, "classes.tif");
        RasterWriter.WriteClassMap(path, 8, 8, Indices(), [0, 1, 0, 0, 0, -1], null, ["a", "b", "c"], Colours);
        var image = RasterImage.ReadRgb(path);
        Assert.Equal((200, 100, 40), Pixel(image, 1, 0));
        Assert.Equal((255, 0, 0), Pixel(image, 5, 5));
    }

    [Fact]
    public void APalettedSceneIsTiledThroughItsColourTableWithTransparentEntriesAsNodata()
    {
        // 16 x 16: the left half the checkerboard of entries 0 and 2, the top right entry 1, the bottom right nodata
        // (255, a transparent entry in the class map's table).
        var classes = new byte[256];
        for (var y = 0; y < 16; y++)
            for (var x = 0; x < 16; x++)
                classes[y * 16 + x] = x < 8 ? (byte)((x + y) % 2 == 0 ? 0 : 2) : y < 8 ? (byte)1 : (byte)255;
        var path = Path.Combine(_dir.FullName, "paletted-scene.tif");
        RasterWriter.WriteClassMap(path, 16, 16, classes, [0, 1, 0, 16, 0, -1], null, ["a", "b", "c"], Colours);

        using (var native = SceneTiler.Open(path, new TilingOptions { TileSize = 8, AllowMissingCrs = true }))
        {
            Assert.Equal([1, 1, 1], native.Info.RgbBands);
            Assert.Equal(256, native.Info.PaletteEntries);
            Assert.All(native.Info.StretchRanges, r => Assert.Equal((0.0, 255.0), r));   // colours as they are
            var first = native.ReadTile(0, 0)!;
            Assert.Equal((0, 0, 0), Pixel(first.Image, 0, 0));
            Assert.Equal((200, 100, 40), Pixel(first.Image, 0, 1));
            Assert.Equal((255, 0, 0), Pixel(native.ReadTile(0, 1)!.Image, 3, 3));
            Assert.Null(native.ReadTile(1, 1));   // all nodata: skipped
            Assert.Contains("paletted: through its colour table of 256 entries", SceneDescription.Text(native.Info, 8));
            // A thumbnail of the whole scene (8 x 8): averaged colours, black where only nodata lies.
            var thumbnail = native.ReadWindow(new PixelWindow(0, 0, 16, 16), 8);
            Assert.Equal((100, 50, 20), Pixel(thumbnail, 0, 0));
            Assert.Equal((255, 0, 0), Pixel(thumbnail, 0, 7));
            Assert.Equal((0, 0, 0), Pixel(thumbnail, 7, 7));
        }

        // At twice the pixel size one tile covers the scene: each pixel averages the colours of its 2 x 2 source pixels.
        using var reduced = SceneTiler.Open(path, new TilingOptions { TileSize = 8, AllowMissingCrs = true, TargetGsd = 2 });
        var tile = Assert.Single(reduced.Tiles());
        Assert.Equal((100, 50, 20), Pixel(tile.Image, 0, 0));
        Assert.Equal((255, 0, 0), Pixel(tile.Image, 0, 7));
        Assert.Equal((0, 0, 0), Pixel(tile.Image, 7, 7));
        Assert.Equal(0.25, tile.NodataFraction, 6);
    }

    [Fact]
    public void ALargeImageIsReducedByAveragingNotBySkippingPixels()
    {
        // 8 x 8 RGB, a one-pixel checkerboard of black and white: reduced to 4 x 4 it is mid-grey everywhere (nearest
        // would keep one of the two, all black or all white).
        var rows = new byte[8 * (1 + 8 * 3)];
        for (var y = 0; y < 8; y++)
            for (var x = 0; x < 8; x++)
                rows.AsSpan(y * (1 + 24) + 1 + x * 3, 3).Fill((x + y) % 2 == 0 ? (byte)0 : (byte)255);
        var reduced = RasterImage.ReadUploadedRgb(CraftedPngs.Write(8, 8, 2, rows), 1_000_000, 4, "checker.png");
        Assert.Equal((4, 4), (reduced.Width, reduced.Height));
        Assert.All(reduced.Pixels, v => Assert.InRange(v, 126, 129));
    }

    private static (int, int, int) Pixel(RgbImage image, int row, int col) => (image[row, col, 0], image[row, col, 1], image[row, col, 2]);
}
