using System.CommandLine;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// `rscapret search "text" | --tile ID | --image FILE [--bbox ...] [--near ...] [--after ...] [--scene ID] [--latest] [--k 10] [--format table|geojson]`:
/// text-to-image through the [RET] vector, or image-to-image from a stored tile or an image file.
/// </summary>
public static class SearchCommands
{
    public static Command Build()
    {
        var text = new Argument<string?>("text") { Description = "What the tiles should look like, e.g. \"storage tanks near a harbour\"", Arity = ArgumentArity.ZeroOrOne };
        var tile = new Option<string?>("--tile") { Description = "Tiles that look like this stored tile (its id, as search results show it)" };
        var image = new Option<string?>("--image") { Description = "Tiles that look like this image (PNG, JPEG, GeoTIFF...; encoded by the model)" };
        var bbox = new Option<string?>("--bbox") { Description = "minLon,minLat,maxLon,maxLat (WGS84)" };
        var near = new Option<string?>("--near") { Description = "lon,lat,metres: tiles within that distance of the point" };
        var after = new Option<string?>("--after") { Description = "Only scenes acquired on or after this date" };
        var before = new Option<string?>("--before") { Description = "Only scenes acquired before this date" };
        var scene = new Option<long?>("--scene") { Description = "Only this scene's tiles (its id, as `scenes list` shows it)" }
            .Must(v => v is > 0, "must be a positive scene id");
        var latest = new Option<bool>("--latest") { Description = "One acquisition per place: where scenes overlap, only the newest one's tiles (scenes without a date count as oldest)" };
        var asOf = new Option<string?>("--as-of") { Description = "One acquisition per place as it was on this date: the newest acquired on or before it (implies --latest)" };
        var k = new Option<int?>("--k") { Description = $"Number of results (1-{SearchQuery.MaxK}, default 10)" }
            .Must(v => v is >= 1 and <= SearchQuery.MaxK, $"must be 1..{SearchQuery.MaxK}");
        var offset = new Option<int?>("--offset") { Description = $"Skip this many rows of the ranking (paging: --offset 5 --k 5 is rows 6-10 of --k 10; offset + k at most {CatalogStore.MaxRankDepth})" }
            .Must(v => v is >= 0, "must be 0 or more");
        var minRelevance = new Option<double?>("--min-relevance") { Description = "Only tiles whose relevance (calibrated chance of a match, text queries) is at least this (0-1); when none is, the nearest is shown, marked ~" }
            .Must(v => v is >= 0 and <= 1, "must be between 0 and 1");
        var format = new Option<string>("--format") { Description = "table or geojson", DefaultValueFactory = _ => "table" };
        format.AcceptOnlyFromAmong("table", "geojson");
        var exact = new Option<bool>("--exact") { Description = "Exhaustive search without the ANN index (validation)" };
        var localize = new Option<bool>("--localize")
        {
            Description = $"Where in each result the query matches: its hottest cells (within {TileLocalization.HotMargin} of its best cell), merged into " +
                          $"a polygon (stored cell vectors, else the tile's imagery re-read; at most {SearchLocalizer.MaxRows} results)",
        };
        var mode = new Option<string>("--mode")
        {
            Description = $"Text queries: vector (the [RET] vector's cosine) or hybrid (its first {RsCapRet.Core.HybridRanking.DefaultDepth} rows re-ranked by " +
                          $"reciprocal rank fusion with a match of the text against the tiles' captions); default {RsCapRet.Core.HybridRanking.DefaultMode.ToString().ToLowerInvariant()}, chosen on val",
            DefaultValueFactory = _ => RsCapRet.Core.HybridRanking.DefaultMode.ToString().ToLowerInvariant(),
        };
        mode.AcceptOnlyFromAmong("vector", "hybrid");
        var captionWeight = new Option<double>("--caption-weight") { Description = "Hybrid: the caption match's weight in the fusion (0-100)", DefaultValueFactory = _ => RsCapRet.Core.HybridRanking.DefaultCaptionWeight }
            .Must(v => v is >= 0 and <= 100, "must be between 0 and 100");
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var cmd = new Command("search", "Find tiles by text, with optional spatial and time filters")
            { text, tile, image, bbox, near, after, before, scene, latest, asOf, k, offset, minRelevance, format, exact, localize, mode, captionWeight, model, device, DbCommands.DbOption };
        CommandAction.Set(cmd, async (parse, output, ct) =>
        {
            var (textValue, tileValue, imageValue) = (parse.GetValue(text), parse.GetValue(tile), parse.GetValue(image));
            var given = new[] { textValue, tileValue, imageValue }.Count(v => !string.IsNullOrWhiteSpace(v));
            if (given != 1) throw new ArgumentException("give exactly one of: a query text, --tile ID, --image FILE");
            var query = SearchQuery.Parse(textValue, parse.GetValue(k)?.ToString(System.Globalization.CultureInfo.InvariantCulture), parse.GetValue(bbox), parse.GetValue(near),
                parse.GetValue(after), parse.GetValue(before), parse.GetValue(exact), textRequired: false,
                offset: parse.GetValue(offset)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                minRelevance: parse.GetValue(minRelevance)?.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                scene: parse.GetValue(scene)?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                latest: parse.GetValue(latest) ? "true" : null, asOf: parse.GetValue(asOf));
            var hybrid = RsCapRet.Core.HybridRanking.ParseMode(parse.GetValue(mode)!) == RsCapRet.Core.RetrievalMode.Hybrid;
            if (hybrid && textValue is null) throw new ArgumentException("--mode hybrid ranks by a query text: not with --tile or --image");
            if (hybrid && query.Filter.NewestPerPlace) throw new ArgumentException("--mode hybrid does not combine with --latest or --as-of (one acquisition per place)");
            var localized = parse.GetValue(localize);
            if (localized && query.K > SearchLocalizer.MaxRows) throw new ArgumentException($"--localize takes --k {SearchLocalizer.MaxRows} at most, got {query.K}");
            await using var ds = await RsCapRetDatabase.OpenAsync(RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption)), ct: ct);
            // RSCAPRET_DB_READ (a streaming replica) serves the search itself; the primary registers the model.
            await using var reads = RsCapRetDatabase.ResolveReadConnectionString() is { } read ? RsCapRetDatabase.CreateDataSource(read) : null;
            var store = new CatalogStore(ds, reads);
            RankedHits ranked;
            if (tileValue is not null)
            {
                // The stored vector is the query: no model needed, and the tile's own model is searched.
                var id = SearchQuery.ParseTileId(tileValue);
                var hits = await store.SearchByTileAsync(id, query.K, query.Offset, query.Filter, ct) ?? throw new ArgumentException($"no tile {id} in a completed scene");
                ranked = RankedHits.Without(hits, RelevanceCalibration.NotTextNote, query.Offset);
                if (localized && await store.GetTileVectorAsync(id, ct) is { } source)
                {
                    // The tile's own vector is the query; the model is loaded only for results without stored cells.
                    var outcome = await SearchLocalizer.LocalizeAsync(store, new RegisteredSceneFiles(), hits, $"tile {id}", source.Vector, source.ModelId, null, ct);
                    if (outcome.NeedsModel)
                    {
                        using var encoder = await CommonOptions.LoadServingEncoderAsync(parse.GetValue(model), parse.GetValue(device)!, false, store, ct);
                        var cells = new CellEncoder(await store.RegisterModelAsync(encoder.Identity, ct), encoder.InputSize, encoder.EncodeCells);
                        outcome = await SearchLocalizer.LocalizeAsync(store, new RegisteredSceneFiles(), hits, $"tile {id}", source.Vector, source.ModelId, cells, ct);
                    }
                    ranked = ranked with { Localized = outcome };
                }
            }
            else
            {
                // --model / RSCAPRET_MODEL, else the activated model, else models/default: the vector and the model id filter agree.
                using var encoder = await CommonOptions.LoadServingEncoderAsync(parse.GetValue(model), parse.GetValue(device)!, false, store, ct);
                var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
                var vector = imageValue is not null
                    ? encoder.EmbedImage(RsCapRet.Raster.RasterImage.ReadRgb(imageValue, maxSide: 4096))
                    : encoder.EmbedText(query.Text!);
                var hits = hybrid
                    ? await store.HybridSearchAsync(vector, query.Text!, query.K, query.Offset, query.Filter with { ModelId = modelId }, parse.GetValue(captionWeight), ct)
                    : await store.SearchAsync(vector, query.K, query.Offset, query.Filter with { ModelId = modelId }, ct);
                // Relevance is calibrated for text: image queries are ranked by score only.
                ranked = imageValue is not null ? RankedHits.Without(hits, RelevanceCalibration.NotTextNote, query.Offset)
                    : RankedHits.Score(hits, vector, encoder.Directory, query.Offset).AtLeast(query.MinRelevance);
                if (localized)
                    ranked = ranked with
                    {
                        Localized = await SearchLocalizer.LocalizeAsync(store, new RegisteredSceneFiles(), ranked.Hits, query.Text ?? "image", vector, modelId,
                            new CellEncoder(modelId, encoder.InputSize, encoder.EncodeCells), ct),
                    };
            }
            await output.WriteAsync(parse.GetValue(format) == "geojson" ? SearchOutput.GeoJson(ranked) + "\n" : SearchOutput.Table(ranked));
            return 0;
        });
        return cmd;
    }
}
