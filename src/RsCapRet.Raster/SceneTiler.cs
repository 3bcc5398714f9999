using RsCapRet.Core;
using RsCapRet.Raster.Gdal;

namespace RsCapRet.Raster;

/// <summary>How a scene's bands become 8-bit RGB.</summary>
public enum StretchMode
{
    /// <summary>Byte imagery is used as stored (what captioning datasets look like); other types get the percentile stretch.</summary>
    Auto,
    /// <summary>Per-scene, per-band percentile stretch (low..high percent to 0..255), whatever the data type.</summary>
    Percentile,
    /// <summary>Values clamped to 0..255 as they are.</summary>
    None,
}

/// <summary>Options of <see cref="SceneTiler"/>; defaults suit a model with 224-px inputs.</summary>
public sealed record TilingOptions
{
    /// <summary>Tile edge in output pixels (the model's input size).</summary>
    public int TileSize { get; init; } = 224;
    /// <summary>Overlap between neighbouring tiles, in output pixels.</summary>
    public int Overlap { get; init; }
    /// <summary>Ground sample distance tiles are resampled to, in metres per pixel (the file's own units when its CRS has none: <see cref="RasterDataset.MetresPerPixel"/>); null = native.</summary>
    public double? TargetGsd { get; init; }
    /// <summary>1-based band numbers for R, G, B (e.g. 4,3,2); null = from colour interpretation, else bands 1-3.</summary>
    public IReadOnlyList<int>? Bands { get; init; }
    /// <summary>Tiles whose fraction of nodata/masked/outside pixels exceeds this are skipped (and counted).</summary>
    public double MaxNodataFraction { get; init; } = 0.5;
    public StretchMode Stretch { get; init; } = StretchMode.Auto;
    public double StretchLowPercent { get; init; } = 2;
    public double StretchHighPercent { get; init; } = 98;
    /// <summary>Accept scenes without a CRS (footprints are then in pixel coordinates, SRID 0, and no WGS84 footprint).</summary>
    public bool AllowMissingCrs { get; init; }
    /// <summary>Most grid tiles one scene may plan (RSCAPRET_MAX_GRID_TILES): a scene that declares a huge size fails at once.</summary>
    public long MaxGridTiles { get; init; } = Configured.MaxGridTiles;
    /// <summary>How many times finer than native a target GSD may be (upsampling beyond this invents pixels).</summary>
    public double MaxUpsampling { get; init; } = 4;
    /// <summary>
    /// Most bands GDAL may decode for each pixel (RSCAPRET_MAX_DECODED_BANDS): the chosen ones, or every band of a file
    /// that interleaves its bands by pixel (decoding one band's block decodes all of them).
    /// </summary>
    public int MaxDecodedBands { get; init; } = Configured.MaxDecodedBands;
    /// <summary>Most bytes one block may decode to (RSCAPRET_MAX_BLOCK_MB): every tile touching a block decodes all of it.</summary>
    public long MaxBlockBytes { get; init; } = Configured.MaxBlockMb * (1L << 20);
    /// <summary>
    /// Most bytes the decoded bands may declare per byte of the files GDAL reads for the scene (RSCAPRET_MAX_DECODE_RATIO):
    /// deflate stops near 1000:1, so far beyond it lies a decode bomb (strips sharing one compressed blob) or an empty file.
    /// </summary>
    public long MaxDecodeRatio { get; init; } = Configured.MaxDecodeRatio;

    public const string MaxDecodedBandsVariable = "RSCAPRET_MAX_DECODED_BANDS";
    public const string MaxBlockMbVariable = "RSCAPRET_MAX_BLOCK_MB";
    public const string MaxDecodeRatioVariable = "RSCAPRET_MAX_DECODE_RATIO";

    /// <summary>The defaults above as configured (RasterOptions, read from the environment when options are made).</summary>
    private static RasterOptions Configured => Core.Configuration.EnvironmentSettings.Load<RasterOptions>();
    /// <summary>
    /// File-name pattern with a <c>(?&lt;date&gt;yyyyMMdd)</c> group, the last source of an acquisition time
    /// (<see cref="AcquisitionTimes"/>); default RSCAPRET_ACQUIRED_PATTERN, else NAIP's trailing _YYYYMMDD; null = none.
    /// </summary>
    public System.Text.RegularExpressions.Regex? AcquiredNamePattern { get; init; } = AcquisitionTimes.PatternFromEnvironment();
    /// <summary>The scene's STAC item when it came from a catalog (index-archive CATALOG.json); else <c>scene + ".json"</c> is looked for.</summary>
    public string? StacItem { get; init; }

    public void Validate()
    {
        if (TileSize is < 8 or > 8192) throw new ArgumentOutOfRangeException(nameof(TileSize), TileSize, "Tile size must be 8..8192 px.");
        if (Overlap < 0 || Overlap >= TileSize) throw new ArgumentOutOfRangeException(nameof(Overlap), Overlap, "Overlap must be 0..tile size-1.");
        if (TargetGsd is <= 0) throw new ArgumentOutOfRangeException(nameof(TargetGsd), TargetGsd, "Target GSD must be positive.");
        if (MaxNodataFraction is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(MaxNodataFraction), MaxNodataFraction, "Must be 0..1.");
        if (!(StretchLowPercent >= 0 && StretchLowPercent < StretchHighPercent && StretchHighPercent <= 100))
            throw new ArgumentOutOfRangeException(nameof(StretchLowPercent), "Stretch percentiles must satisfy 0 <= low < high <= 100.");
        if (Bands != null && Bands.Count != 3) throw new ArgumentException("Exactly three bands (R,G,B) must be named.", nameof(Bands));
    }
}

/// <summary>Scene-level facts: what was opened and how it is tiled.</summary>
public sealed record SceneInfo(string Path, string Driver, int Width, int Height, int BandCount, IReadOnlyList<int> RgbBands,
    int? AlphaBand, CrsInfo? Crs, double[]? GeoTransform, double NativeGsd, double TileGsd, int GridRows, int GridCols,
    Footprint FootprintNative, Footprint? FootprintWgs84, Acquisition? Acquisition,
    IReadOnlyList<(double Low, double High)> StretchRanges)
{
    public DateTimeOffset? AcquiredAt => Acquisition?.Time;
    /// <summary>Whether <see cref="NativeGsd"/> and <see cref="TileGsd"/> are metres (<see cref="RasterDataset.MetresPerPixel"/>); else the file's own units.</summary>
    public bool GsdInMetres { get; init; }
    /// <summary>The colour table's entries when the RGB bands are one paletted band read through it; else null.</summary>
    public int? PaletteEntries { get; init; }
    /// <summary>Where the tiles lie: flush edges, padding of dimensions smaller than a tile.</summary>
    public required TileGrid Grid { get; init; }
}

/// <summary>
/// One tile ready for the model: grid position, source window (its real pixels, inside the raster), RGB pixels
/// (padded to the model input where the window is smaller than a tile), footprints of the window, and the nodata share
/// of its real pixels.
/// </summary>
public sealed record RasterTile(int GridRow, int GridCol, PixelWindow Window, RgbImage Image,
    Footprint FootprintNative, Footprint? FootprintWgs84, double NodataFraction);

/// <summary>
/// Turns a raster into model-ready RGB tiles with windowed (optionally resampled) GDAL reads only, so memory is
/// bounded by the tile size whatever the scene size. Band choice, 8-bit stretch, nodata/alpha handling, the tile
/// grid and footprints (native CRS and EPSG:4326) are decided here.
/// The last column and row sit flush with the raster's right and bottom edges (<see cref="TileGrid"/>); a dimension
/// smaller than one tile is one tile padded with <see cref="Padding"/>, which is not nodata.
/// </summary>
public sealed class SceneTiler : IDisposable
{
    private readonly RasterDataset _ds;
    private readonly TilingOptions _options;
    private readonly CoordinateTransform? _toWgs84;
    private readonly int _srid;
    private readonly TileGrid _grid;
    /// <summary>The colour table the tiles are read through (a paletted scene); null otherwise.</summary>
    private readonly IReadOnlyList<PaletteEntry>? _palette;

    /// <summary>
    /// How tiles narrower than the model input are filled. Chosen by measurement (bench/run padding, docs/cli.md "Edge tiles
    /// and small scenes"): the padding whose crops' image vectors came nearest the whole image's (mean cosine).
    /// </summary>
    public const TilePadding Padding = TilePadding.Mirror;

    public SceneInfo Info { get; }
    /// <summary>Tiles skipped so far by <see cref="Tiles"/> (more real nodata than the threshold; padding never counts).</summary>
    public int SkippedTiles { get; private set; }

    /// <summary>
    /// After <see cref="Tiles"/> has run to the end: valid pixels (not nodata, masked, transparent or NaN) under at
    /// least one kept tile / valid pixels of the raster, in raster pixels; a pixel of a skipped tile that a kept
    /// neighbour also covers counts. Counted per atomic cell of the tile windows' edges from the tiles' own masks
    /// (see <see cref="TileCoverage"/>): exact at the native GSD, to the resampled mask's precision otherwise.
    /// Null before that, and when the raster has no valid pixel.
    /// </summary>
    public double? Coverage => _coverageDone && ValidPixels > 0 ? (double)CoveredPixels / ValidPixels : null;
    /// <summary>Valid raster pixels, counted by the last complete <see cref="Tiles"/> run.</summary>
    public long ValidPixels { get; private set; }
    /// <summary>Valid raster pixels under a kept tile, counted by the last complete <see cref="Tiles"/> run.</summary>
    public long CoveredPixels { get; private set; }
    private bool _coverageDone;

    private SceneTiler(RasterDataset ds, TilingOptions options, CancellationToken ct)
    {
        _ds = ds;
        _options = options;
        var path = ds.Path;
        if (ds.Crs is null && !options.AllowMissingCrs)
            throw new RasterException(path, "has no coordinate reference system, so its tiles cannot be placed on the map " +
                                            "(georeference it, or pass --no-crs to index it in pixel coordinates)");
        if (ds.GeoTransform is null && !options.AllowMissingCrs)
            throw new RasterException(path, "has no geotransform, so its tiles cannot be placed on the map (pass --no-crs to index it in pixel coordinates)");

        var (rgb, alpha) = ChooseBands(ds, options.Bands);
        _palette = PaletteOf(ds, rgb);
        foreach (var b in rgb.Distinct())
            if (ds.Bands[b - 1].DataType is GdalDataType.CInt16 or GdalDataType.CInt32 or GdalDataType.CFloat32 or GdalDataType.CFloat64 or GdalDataType.Unknown)
                throw new RasterException(path, $"band {b} has data type {ds.Bands[b - 1].DataType}, which cannot be shown as an image");

        var gt = ds.GeoTransform ?? [0, 1, 0, 0, 0, 1];
        // Metres wherever the CRS says how (degrees and feet converted), so --gsd and the model's range mean metres.
        var metres = ds.MetresPerPixel;
        var nativeGsd = metres ?? ds.PixelSize;
        var units = metres is null ? "units/px" : "m/px";
        var tileGsd = options.TargetGsd ?? nativeGsd;
        // Per axis, so a tile is square on the ground where pixels are not (degrees away from the equator).
        var (scaleX, scaleY) = ds.PixelMetres is var (column, row) ? (tileGsd / column, tileGsd / row) : (tileGsd / nativeGsd, tileGsd / nativeGsd);
        static int Px(double v) => Math.Max(1, (int)Math.Round(v));
        _grid = new TileGrid(ds.Width, ds.Height, Px(options.TileSize * scaleX), Px((options.TileSize - options.Overlap) * scaleX), options.TileSize, Padding)
        {
            SourceTileY = Px(options.TileSize * scaleY), SourceStrideY = Px((options.TileSize - options.Overlap) * scaleY),
        };
        var cols = _grid.Cols;
        var rows = _grid.Rows;
        // Bounded work: checked before anything is read (statistics, tiles).
        if (options.TargetGsd is { } t && t < nativeGsd / options.MaxUpsampling)
            throw new RasterException(path, FormattableString.Invariant($"--gsd {t:G4} is more than {options.MaxUpsampling:G3}x finer than the native {nativeGsd:G4} {units} (upsampling only invents pixels); use --gsd {nativeGsd / options.MaxUpsampling:G4} or coarser"));
        if ((long)rows * cols > options.MaxGridTiles)
            throw new RasterException(path, FormattableString.Invariant($"{ds.Width}x{ds.Height} px would be {(long)rows * cols:N0} tiles of {options.TileSize} px, more than the limit of {options.MaxGridTiles:N0} per scene (raise RSCAPRET_MAX_GRID_TILES, or pass a coarser --gsd)"));
        CheckDecodeBounds(ds, rgb, alpha, options);

        if (ds.Crs != null)
        {
            using var native = SpatialReference.FromWkt(ds.Crs.Wkt);
            using var wgs84 = SpatialReference.FromEpsg(4326);
            _toWgs84 = new CoordinateTransform(native, wgs84, path);
            _srid = ds.Crs.Epsg ?? 0;
        }
        var full = new PixelWindow(0, 0, ds.Width, ds.Height);
        Info = new SceneInfo(path, ds.DriverName, ds.Width, ds.Height, ds.Bands.Count, rgb, alpha, ds.Crs, ds.GeoTransform,
            nativeGsd, tileGsd, rows, cols, NativeFootprint(full), Wgs84Footprint(full), AcquisitionTimes.Find(ds, path, options.AcquiredNamePattern, options.StacItem),
            StretchRanges(ds, rgb, alpha, options, paletted: _palette is not null, ct))
        { Grid = _grid, GsdInMetres = metres is not null, PaletteEntries = _palette?.Count };
    }

    /// <summary>
    /// What makes this scene's tiles unreliable, read when asked (ingestion and inspect; a map tile or thumbnail opens
    /// the scene without it): tiles that are mostly padding (<see cref="TileGrid.SmallTileWarning"/>), an undeclared collar.
    /// </summary>
    public IReadOnlyList<string> Warnings(CancellationToken ct = default) =>
        new[] { _grid.SmallTileWarning, _palette is null ? CollarWarning(_ds, Info.RgbBands, Info.AlphaBand, ct) : null }.OfType<string>().ToArray();

    /// <summary>
    /// A warped or rotated scene's collar: when all four corner pixels are 0 in every chosen band and the file declares
    /// no nodata, mask or alpha, GDAL reads the collar as data, so its tiles would be captioned and searched as black
    /// ground. Four one-pixel reads per band.
    /// </summary>
    private static string? CollarWarning(RasterDataset ds, IReadOnlyList<int> rgb, int? alpha, CancellationToken ct)
    {
        if (alpha is not null || ds.Width < 2 || ds.Height < 2) return null;
        var bands = rgb.Distinct().ToArray();
        if (bands.Any(b => ds.Bands[b - 1].NoData is not null || (ds.Bands[b - 1].MaskFlags & GdalNative.GMF_ALL_VALID) == 0)) return null;
        var value = new double[1];
        foreach (var (x, y) in new[] { (0, 0), (ds.Width - 1, 0), (0, ds.Height - 1), (ds.Width - 1, ds.Height - 1) })
            foreach (var b in bands)
            {
                ds.Read(b, new PixelWindow(x, y, 1, 1), value.AsSpan(), 1, 1, ct: ct);
                if (value[0] != 0) return null;
            }
        return "its four corners are black (0 in every band) and it declares no nodata: if that is a collar around the image " +
               "(a warped or rotated scene), declare it (gdal_translate -a_nodata 0 IN.tif OUT.tif) or the collar is captioned " +
               "and searched as black ground";
    }

    /// <summary>
    /// Opens a scene: its bands, grid and stretch (a decimated read of the whole scene for non-8-bit data, which a
    /// cancelled <paramref name="ct"/> stops at GDAL's next block). Refused before any pixel is read when the grid or
    /// what GDAL would decode exceeds the options' limits (<see cref="CheckDecodeBounds"/>).
    /// </summary>
    public static SceneTiler Open(string path, TilingOptions? options = null, CancellationToken ct = default)
    {
        options ??= new TilingOptions();
        options.Validate();
        var ds = RasterDataset.Open(path);
        try { return new SceneTiler(ds, options, ct); }
        catch { ds.Dispose(); throw; }
    }

    /// <summary>
    /// What reading the scene makes GDAL decode, bounded from its declared structure before any pixel is read: bands
    /// decoded per pixel (all of them when interleaved by pixel), the bytes of one block (a tile read decodes every
    /// block it touches whole), and the declared bytes of the decoded bands against the bytes of the files GDAL reads.
    /// </summary>
    private static void CheckDecodeBounds(RasterDataset ds, IReadOnlyList<int> rgb, int? alpha, TilingOptions options)
    {
        var path = ds.Path;
        var read = rgb.Append(alpha ?? 0).Where(b => b > 0).Distinct().ToArray();
        var interleaved = ds.InterleavedByPixel;
        var decoded = interleaved ? ds.Bands.Select(b => b.Index).ToArray() : read;
        if (decoded.Length > options.MaxDecodedBands)
            throw new RasterException(path, FormattableString.Invariant(
                $"interleaves {ds.Bands.Count} bands by pixel, so reading the {read.Length} it shows decodes all {ds.Bands.Count} for every pixel, more than the limit of {options.MaxDecodedBands} bands decoded per pixel (raise {TilingOptions.MaxDecodedBandsVariable}, or store it band by band: gdal_translate -co INTERLEAVE=BAND)"));
        var bytesPerPixel = decoded.Sum(b => (long)BytesPerSample(ds.Bands[b - 1].DataType));
        foreach (var b in read)
        {
            var (bw, bh) = ds.BlockSize(b);
            var blockBytes = (long)bw * bh * (interleaved ? bytesPerPixel : BytesPerSample(ds.Bands[b - 1].DataType));
            if (blockBytes > options.MaxBlockBytes)
                throw new RasterException(path, FormattableString.Invariant(
                    $"stores band {b} in blocks of {bw}x{bh} px that decode to {blockBytes / 1048576.0:N0} MB each (every tile touching one decodes all of it), more than the limit of {options.MaxBlockBytes / 1048576.0:N0} MB (raise {TilingOptions.MaxBlockMbVariable}, or retile it: gdal_translate -co TILED=YES)"));
        }
        var onDisk = ds.Files.Sum(f => File.Exists(f) ? new FileInfo(f).Length : 0);
        var declared = (double)ds.Width * ds.Height * bytesPerPixel;
        if (onDisk > 0 && declared > (double)onDisk * options.MaxDecodeRatio)
            throw new RasterException(path, FormattableString.Invariant(
                $"declares {ds.Width}x{ds.Height} px x {decoded.Length} bands ({Bytes(declared)} to decode) in {Bytes(onDisk)} of file, {declared / onDisk:N0} times its size, more than the limit of {options.MaxDecodeRatio:N0} (a decode bomb, e.g. strips sharing one compressed blob, or an almost empty file; raise {TilingOptions.MaxDecodeRatioVariable} to read it)"));

        static string Bytes(double n) => n >= 1 << 30 ? FormattableString.Invariant($"{n / (1 << 30):0.#} GB")
            : n >= 1 << 20 ? FormattableString.Invariant($"{n / (1 << 20):0.#} MB") : FormattableString.Invariant($"{n / 1024:0.#} KB");
    }

    private static int BytesPerSample(GdalDataType type) => type switch
    {
        GdalDataType.Byte or GdalDataType.Int8 => 1,
        GdalDataType.UInt16 or GdalDataType.Int16 => 2,
        GdalDataType.UInt32 or GdalDataType.Int32 or GdalDataType.Float32 or GdalDataType.CInt16 => 4,
        GdalDataType.CFloat64 => 16,
        _ => 8,
    };

    /// <summary>
    /// The tiles, row by row; skipped tiles are counted in <see cref="SkippedTiles"/>, and <see cref="Coverage"/> is
    /// known once the enumeration ends.
    /// </summary>
    public IEnumerable<RasterTile> Tiles(CancellationToken ct = default)
    {
        SkippedTiles = 0;
        _coverageDone = false;
        ValidPixels = CoveredPixels = 0;
        var coverage = new TileCoverage(_grid);
        for (var r = 0; r < Info.GridRows; r++)
            for (var c = 0; c < Info.GridCols; c++)
            {
                var read = Read(r, c, ct);
                coverage.Add(r, c, read.Valid, read.Content.Width, read.Content.Height, read.Tile is not null);
                if (read.Tile is null) SkippedTiles++;
                else yield return read.Tile;
            }
        (ValidPixels, CoveredPixels) = coverage.Totals();
        _coverageDone = true;
    }

    /// <summary>Reads one grid cell, or null when its nodata share exceeds the threshold.</summary>
    public RasterTile? ReadTile(int row, int col) => Read(row, col).Tile;

    /// <summary>One grid cell: the tile (null when skipped), and its real pixels with their validity mask (no padding).</summary>
    private (RasterTile? Tile, RgbImage Content, bool[] Valid) Read(int row, int col, CancellationToken ct = default)
    {
        if (row < 0 || row >= Info.GridRows || col < 0 || col >= Info.GridCols)
            throw new ArgumentOutOfRangeException(nameof(row), $"Tile ({row},{col}) is outside the {Info.GridRows}x{Info.GridCols} grid.");
        int n = _options.TileSize, sourceX = _grid.SourceTile, sourceY = _grid.SourceTileY;
        var window = _grid.Window(row, col);
        // The window fills the matching share of the model input; the rest (a dimension smaller than a tile) is padding.
        int outW = _grid.OutputWidth(window.Width), outH = _grid.OutputHeight(window.Height);
        var resample = sourceX == n && sourceY == n ? ResampleAlgorithm.Nearest : Math.Max(sourceX, sourceY) > n ? ResampleAlgorithm.Average : ResampleAlgorithm.Bilinear;

        var (rgb, valid) = ReadStretched(window, outW, outH, resample, ct);
        var invalid = 0;
        for (var k = 0; k < valid.Length; k++)
        {
            if (valid[k]) continue;
            invalid++;
            rgb[k * 3] = rgb[k * 3 + 1] = rgb[k * 3 + 2] = 0;
        }
        var content = new RgbImage(outW, outH, rgb);
        // Over the real pixels only: padding is not missing data.
        var fraction = (double)invalid / valid.Length;
        if (fraction > _options.MaxNodataFraction) return (null, content, valid);
        var image = outW == n && outH == n ? content : TilePadder.Pad(content, n, Padding, valid);
        return (new RasterTile(row, col, window, image, NativeFootprint(window), Wgs84Footprint(window), fraction), content, valid);
    }

    /// <summary>
    /// A window (inside the raster) read into <paramref name="outW"/> x <paramref name="outH"/> pixels with the tiles'
    /// band choice and stretch: RGB bytes, and which pixels hold data — GDAL's mask of each chosen band (nodata,
    /// per-dataset masks), the alpha band, and finite values.
    /// </summary>
    private (byte[] Rgb, bool[] Valid) ReadStretched(PixelWindow clipped, int outW, int outH, ResampleAlgorithm resample,
        CancellationToken ct = default)
    {
        var valid = new bool[outW * outH];
        Array.Fill(valid, true);
        var values = new float[outW * outH];
        var rgb = new byte[outW * outH * 3];
        var mask = new byte[outW * outH];
        foreach (var b in Info.RgbBands.Append(Info.AlphaBand ?? 0).Where(b => b > 0).Distinct())
        {
            if ((_ds.Bands[b - 1].MaskFlags & GdalNative.GMF_ALL_VALID) != 0 && b != Info.AlphaBand) continue;
            if (b == Info.AlphaBand) _ds.Read(b, clipped, mask.AsSpan(), outW, outH, ResampleAlgorithm.Nearest, ct: ct);
            else _ds.ReadMask(b, clipped, mask, outW, outH, ct);
            for (var k = 0; k < mask.Length; k++) if (mask[k] == 0) valid[k] = false;
        }
        if (_palette is not null)
        {
            // Transparent entries are missing data, as an alpha band's zeros are.
            PaletteReads.Read(_ds, Info.RgbBands[0], _palette, clipped, outW, outH, rgb, valid, transparentIsMissing: true, ct);
            return (rgb, valid);
        }
        for (var channel = 0; channel < 3; channel++)
        {
            _ds.Read(Info.RgbBands[channel], clipped, values.AsSpan(), outW, outH, resample, ct: ct);
            var (lo, hi) = Info.StretchRanges[channel];
            var span = hi > lo ? 255.0 / (hi - lo) : 0;
            for (var k = 0; k < values.Length; k++)
            {
                var v = values[k];
                if (float.IsNaN(v) || float.IsInfinity(v)) { valid[k] = false; continue; }
                rgb[k * 3 + channel] = (byte)Math.Clamp(Math.Round((v - lo) * span), 0, 255);
            }
        }
        return (rgb, valid);
    }

    /// <summary>
    /// A window of the scene (clipped to the raster) read into <paramref name="width"/> x <paramref name="height"/>
    /// RGBA pixels, stretched like the tiles, transparent where there is no data (map tiles). GDAL serves a decimated
    /// read from the file's overviews when it has them.
    /// </summary>
    public byte[] ReadRgba(PixelWindow window, int width, int height)
    {
        var clipped = Clip(window);
        var resample = clipped.Width > width || clipped.Height > height ? ResampleAlgorithm.Average : ResampleAlgorithm.Nearest;
        var (rgb, valid) = ReadStretched(clipped, width, height, resample);
        var rgba = new byte[width * height * 4];
        for (var k = 0; k < valid.Length; k++)
        {
            if (!valid[k]) continue;
            rgba[k * 4] = rgb[k * 3];
            rgba[k * 4 + 1] = rgb[k * 3 + 1];
            rgba[k * 4 + 2] = rgb[k * 3 + 2];
            rgba[k * 4 + 3] = 255;
        }
        return rgba;
    }

    private PixelWindow Clip(PixelWindow window)
    {
        var clipped = new PixelWindow(Math.Max(0, window.X), Math.Max(0, window.Y),
            Math.Min(window.X + window.Width, _ds.Width) - Math.Max(0, window.X), Math.Min(window.Y + window.Height, _ds.Height) - Math.Max(0, window.Y));
        if (clipped.Width <= 0 || clipped.Height <= 0) throw new RasterException(_ds.Path, $"window {window} lies outside the {_ds.Width}x{_ds.Height} raster");
        return clipped;
    }

    /// <summary>The raster's size in pixels and its geotransform (identity when it has none).</summary>
    public (int Width, int Height, double[] GeoTransform) Grid => (_ds.Width, _ds.Height, _ds.GeoTransform ?? [0, 1, 0, 0, 0, 1]);

    /// <summary>Any window of the scene as an RGB image of <paramref name="size"/> x <paramref name="size"/> (thumbnails), stretched like the tiles.</summary>
    public RgbImage ReadWindow(PixelWindow window, int size)
    {
        var clipped = Clip(window);
        var image = RgbImage.Create(size, size);
        if (_palette is not null)
        {
            PaletteReads.Read(_ds, Info.RgbBands[0], _palette, clipped, size, size, image.Pixels, [], transparentIsMissing: true, default);
            return image;
        }
        var values = new float[size * size];
        for (var channel = 0; channel < 3; channel++)
        {
            _ds.Read(Info.RgbBands[channel], clipped, values.AsSpan(), size, size, ResampleAlgorithm.Average);
            var (lo, hi) = Info.StretchRanges[channel];
            var span = hi > lo ? 255.0 / (hi - lo) : 0;
            for (var k = 0; k < values.Length; k++)
                image.Pixels[k * 3 + channel] = float.IsFinite(values[k]) ? (byte)Math.Clamp(Math.Round((values[k] - lo) * span), 0, 255) : (byte)0;
        }
        return image;
    }

    /// <summary>
    /// A rectangle of the raster in (possibly fractional) pixel coordinates as a WGS84 footprint (its four corners
    /// through the geotransform and the CRS; null when the scene has no CRS): the cells inside a tile.
    /// </summary>
    public Footprint? Wgs84Footprint(double x, double y, double width, double height)
    {
        if (_toWgs84 is null) return null;
        var gt = _ds.GeoTransform ?? [0, 1, 0, 0, 0, 1];
        double[] px = [x, x + width, x + width, x, x];
        double[] py = [y, y, y + height, y + height, y];
        var gx = new double[5];
        var gy = new double[5];
        for (var i = 0; i < 5; i++)
        {
            gx[i] = gt[0] + px[i] * gt[1] + py[i] * gt[2];
            gy[i] = gt[3] + px[i] * gt[4] + py[i] * gt[5];
        }
        _toWgs84.Transform(gx, gy);
        return new Footprint(4326, Ring(gx, gy));
    }

    /// <summary>The window's four corners through the full affine geotransform (rotation terms included).</summary>
    private (double[] X, double[] Y) Corners(PixelWindow w)
    {
        var gt = _ds.GeoTransform ?? [0, 1, 0, 0, 0, 1];
        double[] px = [w.X, w.X + w.Width, w.X + w.Width, w.X, w.X];
        double[] py = [w.Y, w.Y, w.Y + w.Height, w.Y + w.Height, w.Y];
        var x = new double[5];
        var y = new double[5];
        for (var i = 0; i < 5; i++)
        {
            x[i] = gt[0] + px[i] * gt[1] + py[i] * gt[2];
            y[i] = gt[3] + px[i] * gt[4] + py[i] * gt[5];
        }
        return (x, y);
    }

    private Footprint NativeFootprint(PixelWindow w)
    {
        var (x, y) = Corners(w);
        return new Footprint(_ds.Crs is null ? 0 : _srid, Ring(x, y));
    }

    private Footprint? Wgs84Footprint(PixelWindow w)
    {
        if (_toWgs84 is null) return null;
        var (x, y) = Corners(w);
        _toWgs84.Transform(x, y);
        return new Footprint(4326, Ring(x, y));
    }

    /// <summary>Counter-clockwise ring (GIS convention for exteriors), closed.</summary>
    private static (double X, double Y)[] Ring(double[] x, double[] y)
    {
        var ring = x.Zip(y, (a, b) => (a, b)).ToArray();
        double area2 = 0;
        for (var i = 0; i < 4; i++) area2 += ring[i].a * ring[i + 1].b - ring[i + 1].a * ring[i].b;
        if (area2 < 0) Array.Reverse(ring);
        return ring;
    }

    internal static (IReadOnlyList<int> Rgb, int? Alpha) ChooseBands(RasterDataset ds, IReadOnlyList<int>? requested)
    {
        var alpha = ds.Bands.FirstOrDefault(b => b.IsAlpha)?.Index;
        if (requested != null)
        {
            foreach (var b in requested)
                if (b < 1 || b > ds.Bands.Count) throw new RasterException(ds.Path, $"has no band {b} (it has {ds.Bands.Count})");
            // A paletted band is a colour picture on its own: it cannot be one channel of three.
            if (requested.Distinct().Count() > 1 && requested.FirstOrDefault(b => ds.Bands[b - 1].ColorInterpretation == ColorInterpretation.Palette) is > 0 and var p)
                throw new RasterException(ds.Path, $"band {p} is paletted: choose it alone (--bands {p}) or expand it first (gdal_translate -expand rgb)");
            return (requested.ToArray(), alpha);
        }
        int? Find(ColorInterpretation ci) => ds.Bands.FirstOrDefault(b => b.ColorInterpretation == ci)?.Index;
        if (Find(ColorInterpretation.Red) is { } r && Find(ColorInterpretation.Green) is { } g && Find(ColorInterpretation.Blue) is { } bl)
            return ([r, g, bl], alpha);
        var data = ds.Bands.Where(b => !b.IsAlpha).Select(b => b.Index).ToArray();
        if (data.Length == 0) throw new RasterException(ds.Path, "has only alpha bands");
        // A paletted band: its colour table gives the three channels (PaletteOf).
        if (ds.Bands[data[0] - 1].ColorInterpretation == ColorInterpretation.Palette) return ([data[0], data[0], data[0]], alpha);
        return (data.Length >= 3 ? data[..3] : [data[0], data[0], data[0]], alpha);
    }

    /// <summary>The colour table the chosen bands are read through: one paletted band chosen for all three; else null.</summary>
    internal static IReadOnlyList<PaletteEntry>? PaletteOf(RasterDataset ds, IReadOnlyList<int> rgb)
    {
        if (rgb.Distinct().Count() != 1 || ds.Bands[rgb[0] - 1].ColorInterpretation != ColorInterpretation.Palette) return null;
        return ds.ColorTable(rgb[0]) is { Count: > 0 } table ? table
            : throw new RasterException(ds.Path, $"band {rgb[0]} is paletted but has no colour table");
    }

    /// <summary>
    /// Per-band stretch ranges from a decimated read of the whole scene (at most ~1 Mpx, so memory stays bounded),
    /// excluding nodata, masked and NaN pixels.
    /// </summary>
    private static IReadOnlyList<(double, double)> StretchRanges(RasterDataset ds, IReadOnlyList<int> rgb, int? alpha, TilingOptions options,
        bool paletted, CancellationToken ct)
    {
        // Colours from a colour table are shown as they are: a stretch would apply to the indices.
        var stretch = paletted ? StretchMode.None
            : options.Stretch == StretchMode.Auto
            ? rgb.All(b => ds.Bands[b - 1].DataType == GdalDataType.Byte) ? StretchMode.None : StretchMode.Percentile
            : options.Stretch;
        if (stretch == StretchMode.None) return rgb.Select(_ => (0.0, 255.0)).ToArray();

        var factor = Math.Max(1.0, Math.Sqrt((double)ds.Width * ds.Height / 1_000_000));
        int w = Math.Max(1, (int)(ds.Width / factor)), h = Math.Max(1, (int)(ds.Height / factor));
        var full = new PixelWindow(0, 0, ds.Width, ds.Height);
        var values = new float[w * h];
        var mask = new byte[w * h];
        var ranges = new List<(double, double)>();
        foreach (var b in rgb)
        {
            ds.Read(b, full, values.AsSpan(), w, h, ResampleAlgorithm.Nearest, ct: ct);
            ds.ReadMask(b, full, mask, w, h, ct);
            var alphaMask = new byte[w * h];
            if (alpha is { } a) ds.Read(a, full, alphaMask.AsSpan(), w, h, ResampleAlgorithm.Nearest, ct: ct);
            var sample = new List<float>(values.Length);
            for (var i = 0; i < values.Length; i++)
                if (mask[i] != 0 && (alpha is null || alphaMask[i] != 0) && float.IsFinite(values[i])) sample.Add(values[i]);
            if (sample.Count == 0) { ranges.Add((0, 255)); continue; }
            sample.Sort();
            double lo = Percentile(sample, options.StretchLowPercent), hi = Percentile(sample, options.StretchHighPercent);
            if (hi <= lo) hi = lo + 1; // a flat band maps to black rather than dividing by zero
            ranges.Add((lo, hi));
        }
        return ranges;
    }

    private static double Percentile(List<float> sorted, double p)
    {
        var pos = p / 100 * (sorted.Count - 1);
        int i = (int)Math.Floor(pos), j = Math.Min(i + 1, sorted.Count - 1);
        return sorted[i] + (sorted[j] - sorted[i]) * (pos - i);
    }

    public void Dispose()
    {
        _toWgs84?.Dispose();
        _ds.Dispose();
    }
}
