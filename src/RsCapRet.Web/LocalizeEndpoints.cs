using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>
/// Where in a tile: GET /api/tiles/{id}/cells?q=TEXT (or tile=ID for the cells that look like another stored tile) —
/// a GeoJSON FeatureCollection with one feature per cell of the serving model's last feature map (polygon in
/// EPSG:4326 on the tile's footprint, row, col, score = cosine to the query), from the tile's imagery re-read from
/// its registered scene and one forward pass.
/// </summary>
public static class LocalizeEndpoints
{
    /// <summary>GET /api/search's localize=1 (or 0): refused with k above <see cref="SearchLocalizer.MaxRows"/>.</summary>
    public static bool LocalizeRequested(HttpRequest req)
    {
        var on = req.Query["localize"].ToString() switch
        {
            "" or "0" or "false" => false,
            "1" or "true" => true,
            var other => throw new FormatException($"localize must be 1 or 0, got '{other}'."),
        };
        if (on && int.TryParse(req.Query["k"], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var k) && k > SearchLocalizer.MaxRows)
            throw new FormatException($"localize=1 takes k {SearchLocalizer.MaxRows} at most, got {k}.");
        return on;
    }

    /// <summary>
    /// The search's rows with their hottest cells against the same query (the text's vector from the query batcher,
    /// or the source tile's stored vector): stored cells need no model; the others are re-read and encoded by the
    /// serving model in one batch, in the model queue. Null and the problem to answer when the model cannot do it.
    /// </summary>
    public static async Task<(RankedHits? Ranked, ProblemHttpResult? Problem)> WithHotCellsAsync(HttpRequest req, CatalogStore store, ModelCache models, WebContext web,
        RankedHits ranked, CancellationToken ct)
    {
        if (ranked.Hits.Count == 0) return (ranked, null);
        string text = req.Query["q"].ToString().Trim();
        int queryModel;
        float[] vector;
        if (!string.IsNullOrEmpty(req.Query["tile"]))
        {
            var id = SearchQuery.ParseTileId(req.Query["tile"]);
            if (await store.GetTileVectorAsync(id, ct) is not { } source) return (null, ApiProblem.NotFound($"no tile {id}"));
            (queryModel, vector, text) = (source.ModelId, source.Vector, $"tile {id}");
        }
        else (queryModel, vector) = await web.Queries.EmbedAsync(text, ct);
        var outcome = await SearchLocalizer.LocalizeAsync(store, web.SceneFiles, ranked.Hits, text, vector, queryModel, null, ct);
        if (outcome.NeedsModel)
        {
            try
            {
                outcome = await web.WithServingModelAsync(models, model => SearchLocalizer.LocalizeAsync(store, web.SceneFiles, ranked.Hits, text,
                    vector, queryModel, new CellEncoder(model.ModelId, model.Encoder.InputSize, model.Encoder.EncodeCells), ct), ct);
            }
            catch (CellVectorsNotAvailableException e) { return (null, ApiProblem.Result(StatusCodes.Status501NotImplemented, e.Message)); }
        }
        return (ranked with { Localized = outcome }, null);
    }

    public static void MapLocalizeEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/tiles/{id:long}/cells", CellsAsync);
    }

    /// <summary>GET /api/tiles/{id}/cells?q=TEXT or tile=ID: the tile's cells scored against the query (see the class).</summary>
    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> CellsAsync(long id, HttpRequest req, CatalogStore store, ModelCache models,
        WebContext web, CancellationToken ct)
    {
        string? text = req.Query["q"];
        long? like = null;
        var hasTile = !string.IsNullOrEmpty(req.Query["tile"]);
        if (hasTile && text is not null) throw new FormatException("give either q (text) or tile (a tile id), not both.");
        if (hasTile) like = SearchQuery.ParseTileId(req.Query["tile"]);
        else if (text is null) throw new FormatException("give q (the text to look for) or tile (a tile id).");
        else if (string.IsNullOrWhiteSpace(text)) throw new FormatException("The query text is empty.");
        if (id <= 0) throw new FormatException($"tile id must be positive, got {id}.");
        try
        {
            var result = await web.WithServingModelAsync(models, async model =>
            {
                var (encoder, modelId) = (model.Encoder, model.ModelId);
                // Cells stored at ingest (--cells) need no imagery and no image pass.
                var stored = like is { } likeId
                    ? await TileLocalizer.FromStoredAsync(store, id, modelId, $"tile {likeId}",
                        async () => await store.GetTileVectorAsync(likeId, ct) is { } v && v.ModelId == modelId ? v.Vector : null, ct)
                    : await TileLocalizer.FromStoredAsync(store, id, modelId, text!.Trim(),
                        () => Task.FromResult<float[]?>(web.Limits.Work.EmbedTexts(encoder, [text.Trim()], ct, "query text")[0]), ct);
                if (stored is not null) return stored;
                if (like is { } other)
                {
                    var otherImage = await TileLocalizer.ReadImageAsync(store, web.SceneFiles, other, encoder.InputSize, ct);
                    return await TileLocalizer.LocalizeAsync(store, web.SceneFiles, id, encoder.InputSize, $"tile {other}", image =>
                    {
                        var both = encoder.EncodeCells([image, otherImage]);
                        return (both[0], both[1].Tile);
                    }, ct);
                }
                // Bounded like every text the host embeds (tokens per prompt, cancellation): over the limit, a 400 (BadInputFilter).
                var vector = web.Limits.Work.EmbedTexts(encoder, [text!.Trim()], ct, "query text")[0];
                return await TileLocalizer.LocalizeAsync(store, web.SceneFiles, id, encoder.InputSize, text.Trim(), image => (encoder.EncodeCells([image])[0], vector), ct);
            }, ct);
            return TypedResults.Text(result.GeoJson(web.ScenePaths.Name(result.Tile.ScenePath)), "application/geo+json");
        }
        catch (TileNotFoundException e) { return ApiProblem.NotFound(e.Message); }
        catch (TileImageryUnavailableException e)
        {
            return ApiProblem.Result(StatusCodes.Status410Gone, $"{web.ScenePaths.Name(e.ScenePath)}: {web.ScenePaths.Redact(e.Problem, e.ScenePath)}");
        }
        catch (CellVectorsNotAvailableException e) { return ApiProblem.Result(StatusCodes.Status501NotImplemented, e.Message); }
    }
}
