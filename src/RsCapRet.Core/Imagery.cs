namespace RsCapRet.Core;

/// <summary>A rectangle of pixels in a raster (column/row offsets and size, source resolution).</summary>
public readonly record struct PixelWindow(int X, int Y, int Width, int Height)
{
    public long PixelCount => (long)Width * Height;
    public override string ToString() => $"{Width}x{Height}+{X}+{Y}";
}

/// <summary>An 8-bit RGB image, rows top to bottom, pixels interleaved (H x W x 3).</summary>
public sealed record RgbImage(int Width, int Height, byte[] Pixels)
{
    public static RgbImage Create(int width, int height) => new(width, height, new byte[checked(width * height * 3)]);

    public byte this[int row, int col, int channel] => Pixels[(row * Width + col) * 3 + channel];
}

/// <summary>A closed polygon ring as (x, y) pairs: lon/lat for EPSG:4326 (traditional GIS order), else native x/y.</summary>
public sealed record Footprint(int Srid, IReadOnlyList<(double X, double Y)> Ring)
{
    public string ToWkt() =>
        "POLYGON((" + string.Join(", ", Ring.Select(p => FormattableString.Invariant($"{p.X:R} {p.Y:R}"))) + "))";
}
