using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace RsCapRet.TestSupport;

/// <summary>Hand-written PNGs of 8-bit samples: ones GDAL would not write (a header promising more rows than sent), and paletted ones.</summary>
public static class CraftedPngs
{
    /// <summary>
    /// A PNG of colour type <paramref name="colourType"/> (2: RGB, 3: palette with <paramref name="palette"/> as PLTE),
    /// bit depth 8, whose IDAT holds <paramref name="filteredRows"/> (each row led by its filter byte) compressed.
    /// </summary>
    public static byte[] Write(int width, int height, byte colourType, byte[] filteredRows, IReadOnlyList<(byte R, byte G, byte B)>? palette = null)
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8;
        header[9] = colourType;
        Chunk(png, "IHDR", header);
        if (palette is not null) Chunk(png, "PLTE", palette.SelectMany(c => new[] { c.R, c.G, c.B }).ToArray());
        using (var compressed = new MemoryStream())
        {
            using (var z = new ZLibStream(compressed, CompressionLevel.Fastest, leaveOpen: true)) z.Write(filteredRows);
            Chunk(png, "IDAT", compressed.ToArray());
        }
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    /// <summary>A paletted PNG of <paramref name="indices"/> (row-major, one byte per pixel), rows unfiltered.</summary>
    public static byte[] Paletted(int width, int height, byte[] indices, IReadOnlyList<(byte R, byte G, byte B)> palette)
    {
        var rows = new byte[height * (width + 1)];
        for (var y = 0; y < height; y++) indices.AsSpan(y * width, width).CopyTo(rows.AsSpan(y * (width + 1) + 1));
        return Write(width, height, 3, rows, palette);
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        var length = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        png.Write(length);
        var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        png.Write(typed);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typed));
        png.Write(crc);
    }

    private static uint Crc32(byte[] bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }
}
