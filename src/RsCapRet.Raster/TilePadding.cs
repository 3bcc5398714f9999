using RsCapRet.Core;

namespace RsCapRet.Raster;

/// <summary>
/// How the part of a model input beyond a scene's edge is filled when a scene dimension is smaller than one tile
/// (the real pixels sit at the top left). Padding is never nodata: it is there because the model's input is square.
/// </summary>
public enum TilePadding
{
    /// <summary>Black (zeros).</summary>
    Zero,
    /// <summary>The last column and row repeated outwards.</summary>
    Edge,
    /// <summary>The real pixels mirrored at the edge (the edge pixel repeated), again and again where the padding is wider than the content.</summary>
    Mirror,
    /// <summary>The mean colour of the real, valid pixels.</summary>
    Mean,
}

/// <summary>Fills a model input around a smaller block of real pixels (<see cref="TilePadding"/>).</summary>
public static class TilePadder
{
    /// <summary>
    /// <paramref name="content"/> at the top left of a <paramref name="width"/> x <paramref name="height"/> image, the
    /// rest filled as <paramref name="mode"/> says. <paramref name="valid"/> (content-sized, optional) tells
    /// <see cref="TilePadding.Mean"/> which pixels hold data.
    /// </summary>
    public static RgbImage Pad(RgbImage content, int width, int height, TilePadding mode, bool[]? valid = null)
    {
        int w = content.Width, h = content.Height;
        if (w < 1 || h < 1 || w > width || h > height)
            throw new ArgumentException($"A {w}x{h} block cannot be padded to {width}x{height}.", nameof(content));
        if (valid is not null && valid.Length != w * h) throw new ArgumentException("The mask does not match the content.", nameof(valid));
        var image = RgbImage.Create(width, height);
        var src = content.Pixels;
        var dst = image.Pixels;
        for (var y = 0; y < h; y++) Array.Copy(src, y * w * 3, dst, y * width * 3, w * 3);
        if (w == width && h == height) return image;
        switch (mode)
        {
            case TilePadding.Zero:
                break;
            case TilePadding.Mean:
            {
                double r = 0, g = 0, b = 0;
                long n = 0;
                for (var k = 0; k < w * h; k++)
                {
                    if (valid is not null && !valid[k]) continue;
                    r += src[k * 3]; g += src[k * 3 + 1]; b += src[k * 3 + 2]; n++;
                }
                if (n == 0) break;
                byte[] mean = [(byte)Math.Round(r / n), (byte)Math.Round(g / n), (byte)Math.Round(b / n)];
                for (var y = 0; y < height; y++)
                    for (var x = y < h ? w : 0; x < width; x++)
                        mean.CopyTo(dst, (y * width + x) * 3);
                break;
            }
            default:
            {
                Func<int, int, int> map = mode == TilePadding.Edge ? Edge : Mirror;
                for (var y = 0; y < height; y++)
                {
                    var sy = map(y, h);
                    for (var x = y < h ? w : 0; x < width; x++)
                        Array.Copy(src, (sy * w + map(x, w)) * 3, dst, (y * width + x) * 3, 3);
                }
                break;
            }
        }
        return image;
    }

    /// <summary>Square padding (the model's input is square).</summary>
    public static RgbImage Pad(RgbImage content, int size, TilePadding mode, bool[]? valid = null) => Pad(content, size, size, mode, valid);

    private static int Edge(int i, int n) => Math.Min(i, n - 1);

    // Period 2n: 0..n-1 as is, then back n-1..0 (the edge pixel repeated, like numpy's "symmetric").
    private static int Mirror(int i, int n)
    {
        var k = i % (2 * n);
        return k < n ? k : 2 * n - 1 - k;
    }
}
