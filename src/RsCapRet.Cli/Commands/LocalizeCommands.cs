using System.CommandLine;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// `rscapret localize TILE_ID "text" | --tile ID [--format table|geojson]`: where in a stored tile a text (or another
/// tile's image) matches — one score per cell of the model's last feature map (7 × 7 at 224 px), computed from the
/// tile's imagery re-read from its scene in one forward pass.
/// </summary>
public static class LocalizeCommands
{
    public static Command Build()
    {
        var tileId = new Argument<string>("tile-id") { Description = "The tile to look inside (its id, as search results show it)" };
        var text = new Argument<string?>("text") { Description = "What to look for, e.g. \"storage tanks\"", Arity = ArgumentArity.ZeroOrOne };
        var like = new Option<string?>("--tile") { Description = "Instead of a text: the cells that look like this stored tile (its id)" };
        var format = new Option<string>("--format") { Description = "table or geojson (one feature per cell: polygon, row, col, score)", DefaultValueFactory = _ => "table" };
        format.AcceptOnlyFromAmong("table", "geojson");
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var cmd = new Command("localize", "Where in a stored tile a text matches: the cosine of every cell (32 px at 224) to the query")
            { tileId, text, like, format, model, device, DbCommands.DbOption };
        CommandAction.Set(cmd, async (parse, output, ct) =>
        {
            var id = SearchQuery.ParseTileId(parse.GetValue(tileId));
            var (textValue, likeValue) = (parse.GetValue(text), parse.GetValue(like));
            if (string.IsNullOrWhiteSpace(textValue) == string.IsNullOrWhiteSpace(likeValue))
                throw new ArgumentException(textValue is not null && string.IsNullOrWhiteSpace(textValue) && likeValue is null
                    ? "the query text is empty" : "give exactly one of: a query text, --tile ID");
            long? likeId = likeValue is null ? null : SearchQuery.ParseTileId(likeValue);
            await using var ds = await RsCapRetDatabase.OpenAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption)), ct: ct);
            var store = new CatalogStore(ds);
            var files = new RegisteredSceneFiles();
            // Fail on a bad id before the model loads.
            if (await store.GetTileAsync(id, ct) is null) throw new TileNotFoundException(id);
            using var encoder = await CommonOptions.LoadServingEncoderAsync(parse.GetValue(model), parse.GetValue(device)!, false, store, ct);
            var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
            // Cells stored at ingest (--cells) need no imagery and no image pass.
            var stored = likeId is { } likeTile
                ? await TileLocalizer.FromStoredAsync(store, id, modelId, $"tile {likeTile}",
                    async () => await store.GetTileVectorAsync(likeTile, ct) is { } v && v.ModelId == modelId ? v.Vector : null, ct)
                : await TileLocalizer.FromStoredAsync(store, id, modelId, textValue!.Trim(), () => Task.FromResult<float[]?>(encoder.EmbedText(textValue.Trim())), ct);
            TileLocalization result;
            if (stored is not null) result = stored;
            else if (likeId is { } other)
            {
                var otherImage = await TileLocalizer.ReadImageAsync(store, files, other, encoder.InputSize, ct);
                result = await TileLocalizer.LocalizeAsync(store, files, id, encoder.InputSize, $"tile {other}", image =>
                {
                    var both = encoder.EncodeCells([image, otherImage]);
                    return (both[0], both[1].Tile);
                }, ct);
            }
            else
            {
                var query = textValue!.Trim();
                var vector = encoder.EmbedText(query);
                result = await TileLocalizer.LocalizeAsync(store, files, id, encoder.InputSize, query, image => (encoder.EncodeCells([image])[0], vector), ct);
            }
            await output.WriteAsync(parse.GetValue(format) == "geojson" ? result.GeoJson() + "\n" : result.Table());
            return 0;
        });
        return cmd;
    }
}
