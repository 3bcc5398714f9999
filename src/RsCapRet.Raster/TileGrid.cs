using RsCapRet.Core;

namespace RsCapRet.Raster;

/// <summary>
/// Where a scene's tiles lie in its pixels. Columns start every <see cref="SourceStride"/> px from the left; the last
/// column sits flush with the right edge (it starts at width - <see cref="SourceTile"/>, overlapping its neighbour),
/// and likewise the last row with the bottom, so every tile is a real window. A dimension smaller than one tile gets
/// one tile spanning all of it, padded up to <see cref="OutputTile"/> model pixels with <see cref="Padding"/>. Rows
/// may span other pixel counts than columns (<see cref="SourceTileY"/>): pixels that are not square on the ground, as
/// a geographic CRS's degrees away from the equator, still make tiles square on the ground.
/// </summary>
/// <param name="Width">raster width in px</param>
/// <param name="Height">raster height in px</param>
/// <param name="SourceTile">a tile's width in raster px (the model's input size at the tile GSD)</param>
/// <param name="SourceStride">distance between column origins in raster px (tile minus overlap)</param>
/// <param name="OutputTile">a tile's edge in model px</param>
/// <param name="Padding">how a tile narrower than the model input is filled</param>
public sealed record TileGrid(int Width, int Height, int SourceTile, int SourceStride, int OutputTile, TilePadding Padding)
{
    /// <summary>A tile's height in raster px (<see cref="SourceTile"/> unless the pixels are not square on the ground).</summary>
    public int SourceTileY { get; init; } = SourceTile;
    /// <summary>Distance between row origins in raster px.</summary>
    public int SourceStrideY { get; init; } = SourceStride;

    public int Cols => Count(Width, SourceTile, SourceStride);
    public int Rows => Count(Height, SourceTileY, SourceStrideY);

    /// <summary>Tiles along a dimension: the last one flush, so an exact multiple gets no extra tile.</summary>
    public static int Count(int size, int tile, int stride) => size <= tile ? 1 : (size - tile + stride - 1) / stride + 1;

    /// <summary>Start and length in raster px of column <paramref name="col"/>.</summary>
    public (int Start, int Length) Column(int col) => Span(col, Width, SourceTile, SourceStride);

    /// <summary>Start and length in raster px of row <paramref name="row"/>.</summary>
    public (int Start, int Length) Row(int row) => Span(row, Height, SourceTileY, SourceStrideY);

    private static (int, int) Span(int i, int size, int tile, int stride) => (Math.Min(i * stride, Math.Max(0, size - tile)), Math.Min(tile, size));

    /// <summary>The real pixels of tile (<paramref name="row"/>, <paramref name="col"/>): always inside the raster.</summary>
    public PixelWindow Window(int row, int col)
    {
        var (x, w) = Column(col);
        var (y, h) = Row(row);
        return new PixelWindow(x, y, w, h);
    }

    /// <summary>Model px that <paramref name="width"/> raster px fill: the whole tile, or their share of it (the rest is padding).</summary>
    public int OutputWidth(int width) => Output(width, SourceTile);

    /// <summary>Model px that <paramref name="height"/> raster px fill.</summary>
    public int OutputHeight(int height) => Output(height, SourceTileY);

    /// <summary>The share of the model's input a tile's real pixels fill: 1 unless the scene is narrower or lower than a tile.</summary>
    public double ContentShare => (double)OutputWidth(Width) * OutputHeight(Height) / ((double)OutputTile * OutputTile);

    /// <summary>Below this share a tile is mostly padding (docs/cli.md: a 64 x 64 px crop keeps 0.56 of the whole image's cosine, 112 x 112 0.80).</summary>
    public const double SmallContentShare = 0.25;

    /// <summary>Why the scene's tiles are mostly padding, or null when they fill at least a quarter of the model's input.</summary>
    public string? SmallTileWarning => ContentShare >= SmallContentShare ? null : string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"the scene is {Width} x {Height} px, so each tile holds only {OutputWidth(Width)} x {OutputHeight(Height)} of the model's {OutputTile} x {OutputTile} px and the rest is {Padding.ToString().ToLowerInvariant()} padding: captions and search results on it are unreliable");

    private int Output(int length, int tile) =>
        length >= tile ? OutputTile : Math.Clamp((int)Math.Round((double)length / tile * OutputTile), 1, OutputTile);

    /// <summary>How many raster px the last column shares with the one before it (0 with one column).</summary>
    public int LastColumnOverlap => Cols < 2 ? 0 : Column(Cols - 2).Start + SourceTile - Column(Cols - 1).Start;

    /// <summary>How many raster px the last row shares with the one before it (0 with one row).</summary>
    public int LastRowOverlap => Rows < 2 ? 0 : Row(Rows - 2).Start + SourceTileY - Row(Rows - 1).Start;
}

/// <summary>
/// How many valid pixels lie under at least one kept tile, counted exactly enough with bounded memory. The tile
/// windows' edges cut each axis into intervals; every atomic cell (x interval x y interval) is under a fixed set of
/// tiles. A cell's valid pixels are counted once, from the first tile read that covers it (its valid mask, in that
/// tile's output pixels, over the cell's edges mapped into them, scaled to raster px), and the cell counts as covered
/// when any kept tile covers it. The flush grid covers the whole raster, so the cells' sum is the raster's valid
/// pixels. Exact without resampling; with it, exact but for the mask's resampling along nodata borders.
/// </summary>
internal sealed class TileCoverage
{
    private readonly TileGrid _grid;
    private readonly int[] _xs, _ys;                      // cell edges, raster px
    private readonly double[] _valid;                     // per cell, raster px
    private readonly bool[] _counted, _covered;

    public TileCoverage(TileGrid grid)
    {
        _grid = grid;
        _xs = Edges(grid.Cols, grid.Column);
        _ys = Edges(grid.Rows, grid.Row);
        var cells = (_xs.Length - 1) * (_ys.Length - 1);
        _valid = new double[cells];
        _counted = new bool[cells];
        _covered = new bool[cells];
    }

    private static int[] Edges(int count, Func<int, (int Start, int Length)> span) =>
        Enumerable.Range(0, count).SelectMany(i => { var (s, l) = span(i); return new[] { s, s + l }; }).Distinct().Order().ToArray();

    /// <summary>
    /// A tile read: <paramref name="valid"/> is its <paramref name="outW"/> x <paramref name="outH"/> mask of real
    /// pixels (padding not included); <paramref name="kept"/> whether it was stored.
    /// </summary>
    public void Add(int row, int col, bool[] valid, int outW, int outH, bool kept)
    {
        var (x0, w) = _grid.Column(col);
        var (y0, h) = _grid.Row(row);
        int cx0 = Array.BinarySearch(_xs, x0), cx1 = Array.BinarySearch(_xs, x0 + w);
        int cy0 = Array.BinarySearch(_ys, y0), cy1 = Array.BinarySearch(_ys, y0 + h);
        var nx = _xs.Length - 1;
        for (var cy = cy0; cy < cy1; cy++)
        {
            var (oy0, oy1) = Map(_ys[cy] - y0, _ys[cy + 1] - y0, h, outH);
            for (var cx = cx0; cx < cx1; cx++)
            {
                var cell = cy * nx + cx;
                if (kept) _covered[cell] = true;
                if (_counted[cell]) continue;
                var (ox0, ox1) = Map(_xs[cx] - x0, _xs[cx + 1] - x0, w, outW);
                var n = 0;
                for (var oy = oy0; oy < oy1; oy++)
                    for (var ox = ox0; ox < ox1; ox++)
                        if (valid[oy * outW + ox]) n++;
                var area = (double)(_xs[cx + 1] - _xs[cx]) * (_ys[cy + 1] - _ys[cy]);
                _valid[cell] = area * n / ((ox1 - ox0) * (oy1 - oy0));
                _counted[cell] = true;
            }
        }
    }

    // A cell's edges (raster px from the tile's origin) in the tile's output px; at least one px wide.
    private static (int, int) Map(int a, int b, int length, int output)
    {
        if (length == output) return (a, b);
        int o0 = (int)Math.Round((double)a * output / length), o1 = (int)Math.Round((double)b * output / length);
        o0 = Math.Clamp(o0, 0, output - 1);
        o1 = Math.Clamp(o1, o0 + 1, output);
        return (o0, o1);
    }

    /// <summary>Valid raster px of the whole scene, and those under a kept tile (rounded).</summary>
    public (long Valid, long Covered) Totals()
    {
        double valid = 0, covered = 0;
        for (var k = 0; k < _valid.Length; k++)
        {
            valid += _valid[k];
            if (_covered[k]) covered += _valid[k];
        }
        return ((long)Math.Round(valid), (long)Math.Round(covered));
    }
}
