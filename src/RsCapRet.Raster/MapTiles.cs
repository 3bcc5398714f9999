using RsCapRet.Core;

namespace RsCapRet.Raster;

/// <summary>A Web Mercator (EPSG:3857) XYZ tile address, as slippy maps (Leaflet, OpenLayers) ask for them.</summary>
public readonly record struct MapTileAddress(int Z, int X, int Y)
{
    public const int MaxZoom = 24;
    private const double Half = 20037508.342789244;   // half the Web Mercator world's width, metres

    /// <summary>Checks the address; the message names what is out of range.</summary>
    public static MapTileAddress Checked(int z, int x, int y)
    {
        if (z is < 0 or > MaxZoom) throw new ArgumentOutOfRangeException(nameof(z), $"zoom {z} is outside 0..{MaxZoom}");
        var n = 1L << z;
        if (x < 0 || x >= n) throw new ArgumentOutOfRangeException(nameof(x), $"x {x} is outside 0..{n - 1} at zoom {z}");
        if (y < 0 || y >= n) throw new ArgumentOutOfRangeException(nameof(y), $"y {y} is outside 0..{n - 1} at zoom {z}");
        return new MapTileAddress(z, x, y);
    }

    /// <summary>A longitude and latitude in EPSG:3857 metres (the spherical formula; latitudes clamped to the square world's ±85.05°).</summary>
    public static (double X, double Y) ToMercator(double lon, double lat) =>
        (Math.Clamp(lon, -180, 180) / 180 * Half,
         Math.Log(Math.Tan((90 + Math.Clamp(lat, -85.05112878, 85.05112878)) * Math.PI / 360)) / Math.PI * Half);

    /// <summary>The tile at zoom <paramref name="z"/> that holds a longitude and latitude (clamped to Web Mercator's range).</summary>
    public static MapTileAddress Containing(double lon, double lat, int z)
    {
        if (z is < 0 or > MaxZoom) throw new ArgumentOutOfRangeException(nameof(z), $"zoom {z} is outside 0..{MaxZoom}");
        var n = 1L << z;
        var (mx, my) = ToMercator(lon, lat);
        var x = (long)Math.Floor((mx + Half) / (2 * Half) * n);
        var y = (long)Math.Floor((Half - my) / (2 * Half) * n);
        return new MapTileAddress(z, (int)Math.Clamp(x, 0, n - 1), (int)Math.Clamp(y, 0, n - 1));
    }

    /// <summary>The tile's bounds in EPSG:3857 metres (y grows north; tile row 0 is the north edge).</summary>
    public (double MinX, double MinY, double MaxX, double MaxY) Mercator
    {
        get
        {
            var size = 2 * Half / (1L << Z);
            return (-Half + X * size, Half - (Y + 1) * size, -Half + (X + 1) * size, Half - Y * size);
        }
    }

    /// <summary>The tile's bounds in longitude and latitude (EPSG:4326).</summary>
    public (double West, double South, double East, double North) LonLat
    {
        get
        {
            var (x0, y0, x1, y1) = Mercator;
            static double Lon(double x) => x / Half * 180;
            static double Lat(double y) => Math.Atan(Math.Sinh(y / Half * Math.PI)) * 180 / Math.PI;
            return (Lon(x0), Lat(y0), Lon(x1), Lat(y1));
        }
    }
}

/// <summary>
/// Renders one scene into Web Mercator map tiles with the band choice and 8-bit stretch of its tiles (the ingestion
/// defaults, as the thumbnails use): every output pixel's centre is taken into the scene's CRS (GDAL/PROJ), then onto
/// the scene's pixel grid, and sampled from one decimated read of the window the tile covers. The read is bounded
/// (at most <see cref="MaxSourcePixels"/> source pixels go to GDAL, which serves coarser requests from the file's
/// overviews when it has them); coarser still — a low zoom over a large scene — samples a preview of the whole scene
/// read once (at most <see cref="PreviewSide"/> px a side) instead of the file. Not thread-safe: one caller at a time.
/// </summary>
public sealed class SceneMapRenderer : IDisposable
{
    public const int TileSize = 256;
    /// <summary>The most source pixels one tile reads from the file; beyond it the preview serves.</summary>
    public const long MaxSourcePixels = 4096L * 4096;
    public const int PreviewSide = 2048;

    private readonly SceneTiler _tiler;
    private readonly CoordinateTransform? _fromMercator;
    private readonly double[] _inverse;   // pixel = inverse(geo)
    private readonly (double MinX, double MinY, double MaxX, double MaxY)? _mercatorBounds;
    private (byte[] Rgba, int Width, int Height)? _preview;

    private SceneMapRenderer(string path, SceneTiler tiler)
    {
        _tiler = tiler;
        var (_, _, gt) = tiler.Grid;
        var det = gt[1] * gt[5] - gt[2] * gt[4];
        if (det == 0) throw new RasterException(path, "has a degenerate geotransform and cannot be drawn on a map");
        _inverse = [(gt[2] * gt[3] - gt[0] * gt[5]) / det, gt[5] / det, -gt[2] / det, (gt[0] * gt[4] - gt[1] * gt[3]) / det, -gt[4] / det, gt[1] / det];
        if (tiler.Info.Crs is { } crs && tiler.Info.FootprintWgs84 is { } footprint)
        {
            using var mercator = SpatialReference.FromEpsg(3857);
            using var native = SpatialReference.FromWkt(crs.Wkt);
            _fromMercator = new CoordinateTransform(mercator, native, path);
            // The footprint in Web Mercator: a cheap test of whether a tile can touch the scene at all.
            var corners = footprint.Ring.Select(p => MapTileAddress.ToMercator(p.X, p.Y)).ToList();
            _mercatorBounds = (corners.Min(c => c.X), corners.Min(c => c.Y), corners.Max(c => c.X), corners.Max(c => c.Y));
        }
    }

    /// <summary>Opens a scene for drawing; a scene without a CRS opens but never covers a map tile.</summary>
    public static SceneMapRenderer Open(string path)
    {
        var tiler = SceneTiler.Open(path, new TilingOptions { TileSize = TileSize, AllowMissingCrs = true, MaxNodataFraction = 1 });
        try { return new SceneMapRenderer(path, tiler); }
        catch { tiler.Dispose(); throw; }
    }

    /// <summary>Whether the tile's area can hold any of the scene (its footprint's Web Mercator box).</summary>
    public bool MayCover(MapTileAddress tile)
    {
        if (_mercatorBounds is not { } b) return false;
        var (x0, y0, x1, y1) = tile.Mercator;
        return x0 <= b.MaxX && x1 >= b.MinX && y0 <= b.MaxY && y1 >= b.MinY;
    }

    /// <summary>
    /// The tile as RGBA (256 x 256, row-major), transparent where the scene has no data or does not reach; null when
    /// no pixel of the scene falls in it.
    /// </summary>
    public byte[]? Render(MapTileAddress tile)
    {
        if (_fromMercator is null || !MayCover(tile)) return null;
        const int n = TileSize;
        var (x0, y0, x1, y1) = tile.Mercator;
        var px = new double[n * n];
        var py = new double[n * n];
        for (var i = 0; i < n; i++)
            for (var j = 0; j < n; j++)
            {
                px[i * n + j] = x0 + (j + 0.5) * (x1 - x0) / n;
                py[i * n + j] = y1 - (i + 0.5) * (y1 - y0) / n;
            }
        var ok = new bool[n * n];
        _fromMercator.TryTransform(px, py, ok);
        var (width, height, _) = _tiler.Grid;
        double minC = double.MaxValue, minR = double.MaxValue, maxC = double.MinValue, maxR = double.MinValue;
        for (var k = 0; k < px.Length; k++)
        {
            if (!ok[k]) continue;
            var c = _inverse[0] + px[k] * _inverse[1] + py[k] * _inverse[2];
            var r = _inverse[3] + px[k] * _inverse[4] + py[k] * _inverse[5];
            px[k] = c; py[k] = r;
            if (c < 0 || r < 0 || c >= width || r >= height) { ok[k] = false; continue; }
            minC = Math.Min(minC, c); maxC = Math.Max(maxC, c); minR = Math.Min(minR, r); maxR = Math.Max(maxR, r);
        }
        if (minC > maxC) return null;
        var window = new PixelWindow((int)Math.Floor(minC), (int)Math.Floor(minR),
            Math.Min(width, (int)Math.Floor(maxC) + 1) - (int)Math.Floor(minC), Math.Min(height, (int)Math.Floor(maxR) + 1) - (int)Math.Floor(minR));

        // What to sample: the window read at about the tile's resolution, or the whole-scene preview when the window
        // is larger than one read may be.
        byte[] source;
        int sw, sh;
        double ox, oy, sx, sy;   // source pixel (c, r) -> buffer ((c - ox) * sx, (r - oy) * sy)
        if ((long)window.Width * window.Height > MaxSourcePixels)
        {
            var preview = _preview ??= Preview();
            (source, sw, sh, ox, oy) = (preview.Rgba, preview.Width, preview.Height, 0, 0);
            (sx, sy) = ((double)preview.Width / width, (double)preview.Height / height);
        }
        else
        {
            sw = Math.Min(window.Width, 2 * n);
            sh = Math.Min(window.Height, 2 * n);
            source = _tiler.ReadRgba(window, sw, sh);
            (ox, oy, sx, sy) = (window.X, window.Y, (double)sw / window.Width, (double)sh / window.Height);
        }
        var rgba = new byte[n * n * 4];
        var any = false;
        for (var k = 0; k < px.Length; k++)
        {
            if (!ok[k]) continue;
            var bx = Math.Min(sw - 1, (int)((px[k] - ox) * sx));
            var by = Math.Min(sh - 1, (int)((py[k] - oy) * sy));
            var s = (by * sw + bx) * 4;
            if (source[s + 3] == 0) continue;
            Buffer.BlockCopy(source, s, rgba, k * 4, 4);
            any = true;
        }
        return any ? rgba : null;
    }

    private (byte[] Rgba, int Width, int Height) Preview()
    {
        var (width, height, _) = _tiler.Grid;
        var scale = Math.Min(1.0, (double)PreviewSide / Math.Max(width, height));
        int w = Math.Max(1, (int)Math.Round(width * scale)), h = Math.Max(1, (int)Math.Round(height * scale));
        return (_tiler.ReadRgba(new PixelWindow(0, 0, width, height), w, h), w, h);
    }

    /// <summary>True once disposed: a caller that held it across an eviction opens the scene again.</summary>
    public bool IsDisposed { get; private set; }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        _fromMercator?.Dispose();
        _tiler.Dispose();
    }
}
