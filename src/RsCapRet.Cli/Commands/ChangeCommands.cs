using System.CommandLine;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// `rscapret changes --before ID|PATH|FROM..TO --after ID|PATH|FROM..TO [--area WKT|--bbox ...] [--toward "text"] [--k 20]
/// [--min-iou 0.5] [--format table|geojson]`: the tiles over the same ground that changed most between two acquisitions.
/// </summary>
public static class ChangeCommands
{
    public static Command Build()
    {
        var before = new Option<string?>("--before") { Description = "The earlier acquisition: a scene id or path, or a date range FROM..TO (e.g. ..2019-01-01)", Required = true };
        var after = new Option<string?>("--after") { Description = "The later acquisition: a scene id or path, or a date range FROM..TO (e.g. 2020-01-01..)", Required = true };
        var area = new Option<string?>("--area") { Description = "Only this area: a WKT polygon in lon/lat (required with date ranges)" };
        var bbox = new Option<string?>("--bbox") { Description = "Only this box: minLon,minLat,maxLon,maxLat (WGS84)" };
        var toward = new Option<string?>("--toward")
        {
            Description = "Rank by how much the after tile moved toward this text, e.g. \"new buildings\"; each pair also says whether its after tile " +
                          "matches the text at all (relevance >= 0.5, from the model's relevance.json)",
        };
        var k = new Option<string?>("--k") { Description = $"Number of pairs (1-{ChangeQuery.MaxK}, default 20)" };
        var minIou = new Option<string?>("--min-iou") { Description = "Least footprint overlap (intersection over union) for two tiles to pair (default 0.5)" };
        var format = new Option<string>("--format") { Description = "table or geojson", DefaultValueFactory = _ => "table" };
        format.AcceptOnlyFromAmong("table", "geojson");
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var cmd = new Command("changes", "What changed between two acquisitions of the same ground: tile pairs ranked by how far their vectors moved")
            { before, after, area, bbox, toward, k, minIou, format, model, device, DbCommands.DbOption };
        CommandAction.Set(cmd, async (parse, output, ct) =>
        {
            var query = ChangeQuery.Parse(parse.GetValue(before), parse.GetValue(after), parse.GetValue(area), parse.GetValue(bbox),
                parse.GetValue(toward), parse.GetValue(k), parse.GetValue(minIou));
            await using var ds = await RsCapRetDatabase.OpenAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption)), ct: ct);
            var store = new CatalogStore(ds);
            var result = await ChangeRunner.RunAsync(store, query, async text =>
            {
                using var encoder = await CommonOptions.LoadServingEncoderAsync(parse.GetValue(model), parse.GetValue(device)!, false, store, ct);
                return (await store.RegisterModelAsync(encoder.Identity, ct), encoder.EmbedText(text), encoder.Directory);
            }, ct);
            foreach (var note in result.Notes) await parse.InvocationConfiguration.Error.WriteLineAsync($"note: {note}");
            await output.WriteAsync(parse.GetValue(format) == "geojson"
                ? ChangeOutput.GeoJson(result) + "\n"
                : ChangeOutput.Table(result));
            // Input that cannot pair (not ingested, no overlap, different models) is not a result a script may take as "no change".
            return result.Changes.Count == 0 && result.Notes.Count > 0 ? CommandAction.UserError : 0;
        });
        return cmd;
    }
}
