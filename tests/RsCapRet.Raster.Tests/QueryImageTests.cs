using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.TestSupport;

namespace RsCapRet.Raster.Tests;

/// <summary>
/// Images given as a search query or to the chat: paletted ones (8-bit PNGs from web optimisers, colour-table TIFFs)
/// read through their colour table, and large ones reduced by averaging.
/// </summary>
public sealed class QueryImageTests : IDisposable
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
    }

    [Fact]
    public void AColourTableTiffReadsAsItsColours()
    {
        var path = Path.Combine(_dir.FullName, "classes.tif");
        RasterWriter.WriteClassMap(path, 8, 8, Indices(), [0, 1, 0, 0, 0, -1], null, ["a", "b", "c"], Colours);
        var image = RasterImage.ReadRgb(path);
        Assert.Equal((200, 100, 40), Pixel(image, 1, 0));
        Assert.Equal((255, 0, 0), Pixel(image, 5, 5));
        // Ingest still asks for RGB: a scene's tiles are resampled, which indices cannot be.
        var e = Assert.Throws<RasterException>(() => SceneTiler.Open(path, new TilingOptions { TileSize = 8, AllowMissingCrs = true }));
        Assert.Contains("is a paletted image", e.Message);
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
