using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using RsCapRet.Core;

namespace RsCapRet.Raster;

/// <summary>What `inspect` shows of a raster: GDAL's facts as JSON, or the raster and its tile grid as text.</summary>
public static class SceneDescription
{
    /// <summary>What GDAL reports of a raster, as JSON; the footprint is a GeoJSON polygon in WGS84 (null without a CRS).</summary>
    public static string Json(string path, Regex? acquiredPattern = null)
    {
        using var ds = RasterDataset.Open(path);
        var tiling = new TilingOptions { AllowMissingCrs = true };
        using var tiler = SceneTiler.Open(path, acquiredPattern is null ? tiling : tiling with { AcquiredNamePattern = acquiredPattern });
        var i = tiler.Info;
        var gt = ds.GeoTransform;
        var doc = new JsonObject
        {
            ["path"] = Path.GetFullPath(path),
            ["driver"] = ds.DriverName,
            ["width"] = ds.Width,
            ["height"] = ds.Height,
            ["bands"] = new JsonArray(ds.Bands.Select(b => (JsonNode?)new JsonObject
            {
                ["band"] = b.Index, ["data_type"] = b.DataType.ToString(), ["color_interpretation"] = b.ColorInterpretationName,
                ["nodata"] = b.NoData is { } nd && double.IsFinite(nd) ? nd : null, ["nodata_is_nan"] = b.NoData is { } n2 && double.IsNaN(n2),
            }).ToArray()),
            ["rgb_bands"] = new JsonArray(i.RgbBands.Select(b => (JsonNode?)b).ToArray()),
            ["palette_entries"] = i.PaletteEntries,
            ["crs_epsg"] = ds.Crs?.Epsg,
            ["crs_wkt"] = ds.Crs?.Wkt,
            ["geotransform"] = gt is null ? null : new JsonArray(gt.Select(v => (JsonNode?)v).ToArray()),
            ["pixel_size"] = gt is null ? null : new JsonArray(Math.Sqrt(gt[1] * gt[1] + gt[4] * gt[4]), Math.Sqrt(gt[2] * gt[2] + gt[5] * gt[5])),
            // The same steps on the ground (a geographic CRS's at the centre latitude); null where the units are unknown.
            ["pixel_size_metres"] = ds.PixelMetres is var (column, row) ? new JsonArray(column, row) : null,
            ["footprint_wgs84"] = i.FootprintWgs84 is { } f ? new JsonObject
            {
                ["type"] = "Polygon",
                ["coordinates"] = new JsonArray(new JsonArray(
                    f.Ring.Select(p => (JsonNode?)new JsonArray(p.X, p.Y)).ToArray())),
            } : null,
            ["acquired_at"] = i.AcquiredAt?.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
            ["acquired_source"] = i.Acquisition?.SourceName,
            ["acquired_from"] = i.Acquisition?.Detail,
            ["stac_collection"] = i.Acquisition?.StacCollection,
        };
        return doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Where the last column and row sit (flush with the raster's edges), or how a dimension smaller than a tile is padded.</summary>
    private static string Edges(TileGrid g)
    {
        string Axis(string name, string coordinate, int count, int size, int tile, int output, int lastStart, int overlap) =>
            count > 1 ? FormattableString.Invariant($"last {name} flush at {coordinate}={lastStart} (overlapping its neighbour by {overlap} px)")
            : size < tile ? FormattableString.Invariant($"one {name} spanning all {size} px, padded from {output} to {g.OutputTile} model px ({g.Padding.ToString().ToLowerInvariant()}; padding is not nodata)")
            : FormattableString.Invariant($"one {name} of {size} px");
        return Axis("column", "x", g.Cols, g.Width, g.SourceTile, g.OutputWidth(g.Width), g.Column(g.Cols - 1).Start, g.LastColumnOverlap) + ", "
             + Axis("row", "y", g.Rows, g.Height, g.SourceTileY, g.OutputHeight(g.Height), g.Row(g.Rows - 1).Start, g.LastRowOverlap);
    }

    /// <summary>A pixel size with three decimals, or four significant digits when smaller (a file's degrees).</summary>
    public static string Gsd(double v) => v.ToString(Math.Abs(v) >= 0.01 || v == 0 ? "0.###" : "G4", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The raster and its tile grid in lines of text (what `inspect` prints before the model's plan).</summary>
    public static string Text(SceneInfo i, int tileSize)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"file: {i.Path} ({i.Driver})");
        sb.AppendLine($"size: {i.Width} x {i.Height} px, {Counted.Of(i.BandCount, "band")}; RGB from bands {string.Join(",", i.RgbBands)}{(i.PaletteEntries is { } p ? $" (paletted: through its colour table of {Counted.Of(p, "entry", "entries")})" : "")}{(i.AlphaBand is { } a ? $", alpha band {a}" : "")}");
        sb.AppendLine($"crs: {(i.Crs is null ? "none" : i.Crs.Epsg is { } e ? $"EPSG:{e}" : "custom (no EPSG code)")}");
        if (i.GeoTransform is { } gt) sb.AppendLine(FormattableString.Invariant($"origin: ({gt[0]}, {gt[3]}), pixel size ({gt[1]}, {gt[5]}), rotation ({gt[2]}, {gt[4]})"));
        var units = i.GsdInMetres ? "m/px" : "units/px";
        var approx = i.Crs is { IsGeographic: true } && i.GsdInMetres ? ", measured at the scene's centre latitude" : "";
        sb.AppendLine($"grid: {Counted.Of(i.GridRows, "row")} x {Counted.Of(i.GridCols, "col")} of {tileSize}-px tiles at {Gsd(i.TileGsd)} {units} (native {Gsd(i.NativeGsd)}{approx})");
        sb.AppendLine("edges: " + Edges(i.Grid));
        if (i.FootprintWgs84 is { } f)
        {
            var xs = f.Ring.Select(p => p.X).ToArray();
            var ys = f.Ring.Select(p => p.Y).ToArray();
            sb.AppendLine(FormattableString.Invariant($"footprint (WGS84): lon {xs.Min():F5}..{xs.Max():F5}, lat {ys.Min():F5}..{ys.Max():F5}"));
        }
        sb.AppendLine(i.Acquisition is { } acq
            ? $"acquired: {acq.Time:u} (from {acq.SourceName}: {acq.Detail}{(acq.StacCollection is { } c ? $", collection {c}" : "")})"
            : "acquired: unknown (no date tag, STAC item or dated file name)");
        // A grey scene's one band stands for R, G and B: its range once.
        sb.AppendLine("stretch: " + string.Join("; ", i.StretchRanges.Select((r, k) => FormattableString.Invariant($"band {i.RgbBands[k]} {r.Low:0.##}..{r.High:0.##}")).Distinct()));
        return sb.ToString();
    }
}
