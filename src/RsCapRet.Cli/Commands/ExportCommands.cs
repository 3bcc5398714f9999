using System.CommandLine;
using RsCapRet.Core;
using RsCapRet.Export;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// `rscapret export --format geoparquet|flatgeobuf|geojson [--bbox ...] [--scene ID] [--model NAME] --out FILE [--overwrite]`: the
/// catalogue's tiles (footprint, caption, scene, time, model, embedding) for GIS tools, DuckDB and notebooks.
/// </summary>
public static class ExportCommands
{
    public static Command Build()
    {
        var format = new Option<string>("--format") { Description = "geoparquet (GeoParquet 1.1), flatgeobuf or geojson", Required = true };
        format.AcceptOnlyFromAmong("geoparquet", "flatgeobuf", "geojson");
        var bbox = new Option<string?>("--bbox") { Description = "Only tiles intersecting minLon,minLat,maxLon,maxLat (WGS84)" };
        var scene = new Option<long?>("--scene") { Description = "Only this scene's tiles (its id)" };
        var modelName = new Option<string?>("--model") { Description = "Only tiles of the model with this name (as `rscapret db status` lists models)" };
        var output = new Option<string>("--out", "-o") { Description = "The file to write, any name (an existing file is refused unless --overwrite)", Required = true };
        var overwrite = new Option<bool>("--overwrite", "--force") { Description = "Replace the --out file when it exists" };
        var cmd = new Command("export", "Write the catalogue's tiles to GeoParquet, FlatGeobuf or GeoJSON (footprints, captions, times, 256-d embeddings)")
            { format, bbox, scene, modelName, output, overwrite, DbCommands.DbOption };
        CommandAction.Set(cmd, async (parse, stdout, ct) =>
        {
            var area = parse.GetValue(bbox) is { Length: > 0 } b ? SearchQuery.ParseBbox(b) : null;
            var fmt = TileExport.ParseFormat(parse.GetValue(format)!);
            var path = parse.GetValue(output)!;
            await using var ds = await RsCapRetDatabase.OpenAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption)), ct: ct);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var store = new CatalogStore(ds);
            var filter = new ExportFilter(area, parse.GetValue(scene), parse.GetValue(modelName));
            var rows = await TileExport.WriteAsync(store, filter, fmt, path, ct: ct, overwrite: parse.GetValue(overwrite));
            await stdout.WriteLineAsync(FormattableString.Invariant($"{Counted.Of(rows, "tile", format: "N0")} written to {path} ({TileExport.FormatName(fmt)}, {new FileInfo(path).Length / 1e6:F1} MB, {sw.Elapsed.TotalSeconds:F1} s)"));
            // Searchable tiles a map file cannot hold: said, so a count that differs from `scenes list` is explained.
            var (unplaced, unplacedScenes) = await store.CountTilesWithoutFootprintAsync(filter, ct);
            if (unplaced > 0)
                await parse.InvocationConfiguration.Error.WriteLineAsync(FormattableString.Invariant(
                    $"note: {unplaced:N0} tile{(unplaced == 1 ? "" : "s")} of {unplacedScenes:N0} scene{(unplacedScenes == 1 ? "" : "s")} without georeferencing (no footprint) {(unplaced == 1 ? "is" : "are")} not in the file"));
            return 0;
        });
        return cmd;
    }
}
