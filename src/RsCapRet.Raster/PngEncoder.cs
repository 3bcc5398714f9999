using System.Buffers.Binary;
using System.IO.Compression;
using RsCapRet.Core;

namespace RsCapRet.Raster;

/// <summary>Encodes RGB and RGBA images as PNG (8-bit truecolour, zlib via the BCL) for thumbnails and map tiles.</summary>
public static class PngEncoder
{
    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        var c = (uint)n;
        for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static byte[] Encode(RgbImage image) => Encode(image.Width, image.Height, image.Pixels, channels: 3);

    /// <summary>An RGBA image (<paramref name="rgba"/> row-major, 4 bytes a pixel) as a PNG with transparency (map tiles).</summary>
    public static byte[] EncodeRgba(int width, int height, byte[] rgba) => Encode(width, height, rgba, channels: 4);

    private static byte[] Encode(int width, int height, byte[] pixels, int channels)
    {
        if (pixels.Length != width * height * channels) throw new ArgumentException($"{pixels.Length} bytes for a {width}x{height} image of {channels} channels");
        using var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; ihdr[9] = channels == 4 ? (byte)6 : (byte)2; // 8 bits, truecolour (with alpha)
        Chunk(ms, "IHDR", ihdr);
        using (var raw = new MemoryStream())
        {
            using (var z = new ZLibStream(raw, CompressionLevel.Fastest, leaveOpen: true))
                for (var y = 0; y < height; y++)
                {
                    z.WriteByte(0); // filter: none
                    z.Write(pixels, y * width * channels, width * channels);
                }
            Chunk(ms, "IDAT", raw.ToArray());
        }
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        var crc = 0xFFFFFFFFu;
        foreach (var b in typeBytes.Concat(data)) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        BinaryPrimitives.WriteUInt32BigEndian(len, crc ^ 0xFFFFFFFFu);
        s.Write(len);
    }
}
