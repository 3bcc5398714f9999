using System.CommandLine;
using RsCapRet.Pipeline;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret search "text" [--bbox ...] [--near ...] [--after ...] [--k 10] [--format table|geojson]`.</summary>
public static class SearchCommands
{
    public static Command Build()
    {
        var text = new Argument<string>("text") { Description = "What the tiles should look like, e.g. \"storage tanks near a harbour\"" };
        var bbox = new Option<string?>("--bbox") { Description = "minLon,minLat,maxLon,maxLat (WGS84)" };
        var near = new Option<string?>("--near") { Description = "lon,lat,metres: tiles within that distance of the point" };
        var after = new Option<string?>("--after") { Description = "Only scenes acquired on or after this date" };
        var before = new Option<string?>("--before") { Description = "Only scenes acquired before this date" };
        var k = new Option<string?>("--k") { Description = "Number of results (1-1000, default 10)" };
        var format = new Option<string>("--format") { Description = "table or geojson", DefaultValueFactory = _ => "table" };
        format.AcceptOnlyFromAmong("table", "geojson");
        var exact = new Option<bool>("--exact") { Description = "Exhaustive search without the ANN index (validation)" };
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var cmd = new Command("search", "Find tiles by text, with optional spatial and time filters")
            { text, bbox, near, after, before, k, format, exact, model, device, DbCommands.DbOption };
        CommandAction.Set(cmd, async (parse, output, ct) =>
        {
            var query = SearchQuery.Parse(parse.GetValue(text), parse.GetValue(k), parse.GetValue(bbox), parse.GetValue(near),
                parse.GetValue(after), parse.GetValue(before), parse.GetValue(exact));
            using var encoder = CommonOptions.LoadEncoder(parse.GetValue(model), parse.GetValue(device)!, false);
            await using var ds = await RsCapRetDatabase.OpenAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption)), ct: ct);
            var store = new CatalogStore(ds);
            var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
            var hits = await store.SearchAsync(encoder.EmbedText(query.Text!), query.K, query.Filter with { ModelId = modelId }, ct);
            await output.WriteAsync(parse.GetValue(format) == "geojson" ? SearchOutput.GeoJson(hits) + "\n" : SearchOutput.Table(hits));
            return 0;
        });
        return cmd;
    }
}
