using System.IO.Compression;

namespace RsCapRet.TestSupport;

/// <summary>
/// Hand-written GeoTIFFs (classic TIFF, deflate, EPSG:32633, 1 m pixels) that GDAL itself would never write: every
/// strip points at one and the same compressed blob, so a file of a few KB declares gigabytes of pixels — the decode
/// bombs the scene guards refuse.
/// </summary>
public static class CraftedTiffs
{
    /// <summary>
    /// <paramref name="width"/> x <paramref name="height"/> px, <paramref name="bands"/> Byte bands of
    /// <paramref name="value"/>, in strips of <paramref name="rowsPerStrip"/> rows (<paramref name="height"/> must be a
    /// multiple of it) that all share one deflated blob. Bands interleaved by pixel (one strip holds every band), or
    /// band by band (<paramref name="pixelInterleaved"/> false: separate planes).
    /// </summary>
    public static string SharedStrips(string path, int width, int height, int bands, int rowsPerStrip, bool pixelInterleaved = true, byte value = 7)
    {
        if (height % rowsPerStrip != 0) throw new ArgumentException("height must be a multiple of rowsPerStrip");
        var stripSamples = (long)width * rowsPerStrip * (pixelInterleaved ? bands : 1);
        var blob = Deflate(stripSamples, value);
        var strips = height / rowsPerStrip * (pixelInterleaved ? 1 : bands);

        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        using var w = new BinaryWriter(file);
        w.Write("II"u8); w.Write((ushort)42); w.Write(0u);   // IFD offset patched below
        var blobAt = Pos(w);
        w.Write(blob);
        Align(w);
        var offsetsAt = Pos(w);
        for (var i = 0; i < strips; i++) w.Write(blobAt);
        var countsAt = Pos(w);
        for (var i = 0; i < strips; i++) w.Write((uint)blob.Length);
        var bitsAt = Pos(w);
        for (var i = 0; i < bands; i++) w.Write((ushort)8);
        Align(w);
        var extraAt = Pos(w);
        for (var i = 1; i < bands; i++) w.Write((ushort)0);
        Align(w);
        var scaleAt = Pos(w);
        foreach (var d in new[] { 1.0, 1.0, 0.0 }) w.Write(d);
        var tieAt = Pos(w);
        foreach (var d in new[] { 0.0, 0.0, 0.0, 500_000.0, 5_000_000.0, 0.0 }) w.Write(d);
        var keysAt = Pos(w);
        ushort[] keys = [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633];
        foreach (var k in keys) w.Write(k);
        Align(w);

        var entries = new List<(ushort Tag, ushort Type, uint Count, uint Value)>
        {
            (256, 4, 1, (uint)width), (257, 4, 1, (uint)height),
            (258, 3, (uint)bands, bands <= 2 ? 8u | (bands == 2 ? 8u << 16 : 0) : bitsAt),
            (259, 3, 1, 8),            // Adobe deflate
            (262, 3, 1, 1),            // min-is-black; the other bands are extra samples
            (273, 4, (uint)strips, strips == 1 ? blobAt : offsetsAt),
            (277, 3, 1, (uint)bands), (278, 4, 1, (uint)rowsPerStrip),
            (279, 4, (uint)strips, strips == 1 ? (uint)blob.Length : countsAt),
            (284, 3, 1, pixelInterleaved ? 1u : 2u),
            (33550, 12, 3, scaleAt), (33922, 12, 6, tieAt), (34735, 3, (uint)keys.Length, keysAt),
        };
        if (bands > 1) entries.Add((338, 3, (uint)(bands - 1), bands - 1 <= 2 ? 0u : extraAt));
        entries.Sort((a, b) => a.Tag.CompareTo(b.Tag));
        var ifdAt = Pos(w);
        w.Write((ushort)entries.Count);
        foreach (var (tag, type, count, v) in entries) { w.Write(tag); w.Write(type); w.Write(count); w.Write(v); }
        w.Write(0u);
        w.Seek(4, SeekOrigin.Begin);
        w.Write(ifdAt);
        return path;
    }

    private static byte[] Deflate(long samples, byte value)
    {
        using var output = new MemoryStream();
        using (var z = new ZLibStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            var chunk = new byte[1 << 20];
            Array.Fill(chunk, value);
            for (var left = samples; left > 0; left -= chunk.Length) z.Write(chunk, 0, (int)Math.Min(left, chunk.Length));
        }
        return output.ToArray();
    }

    private static uint Pos(BinaryWriter w) => checked((uint)w.BaseStream.Position);
    private static void Align(BinaryWriter w) { if (w.BaseStream.Position % 2 == 1) w.Write((byte)0); }
}
