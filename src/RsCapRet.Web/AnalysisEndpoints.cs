using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Npgsql;
using RsCapRet.Inference;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>
/// Views of the catalogue, SQL over the stored vectors and footprints plus at most a few [RET] vectors: GET /api/changes,
/// GET /api/heatmap, GET /api/scenes/{id}/classes.
/// </summary>
public static class AnalysisEndpoints
{
    public static void MapAnalysisEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/changes", ChangesAsync);
        endpoints.MapGet("/api/heatmap", HeatmapAsync);
        endpoints.MapGet("/api/scenes/{id:long}/classes", SceneClassesAsync);
    }

    /// <summary>GET /api/changes: what changed between two acquisitions; before/after are scene ids or date ranges (with bbox or area).</summary>
    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> ChangesAsync(HttpRequest req, CatalogStore store, ModelCache models,
        WebContext web, CancellationToken ct)
    {
        var q = req.Query;
        var query = ChangeQuery.Parse(q["before"], q["after"], q["area"], q["bbox"], q["toward"], q["k"], q["min_iou"], scenePathsAllowed: false);
        RankedChanges result;
        try
        {
            result = await ChangeRunner.RunAsync(store, query, text => web.WithServingModelAsync(models,
                model => Task.FromResult((model.ModelId, web.Limits.Work.EmbedTexts(model.Encoder, [text], ct, "text")[0], (string?)model.Directory)), ct), ct);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.RaiseException)
        {
            // The catalogue's own check of the two sides (rscapret_changes): a refusal of the request, not a fault.
            return ApiProblem.BadRequest(e.MessageText.Replace("rscapret_changes: ", ""));
        }
        return TypedResults.Text(ChangeOutput.GeoJson(result, tile => $"/api/tiles/{tile}/thumbnail.png"), "application/geo+json");
    }

    /// <summary>
    /// GET /api/heatmap: similarity heat map, every tile of the view (bbox) or of a scene scored against a text or a
    /// stored tile; latest=true / as_of=DATE give one acquisition per place (the map page's heat map), never stacked
    /// ones; cells=1 one colour per stored cell.
    /// </summary>
    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> HeatmapAsync(HttpRequest req, CatalogStore store, WebContext web,
        CancellationToken ct)
    {
        var q = req.Query;
        var query = HeatmapQuery.Parse(q["q"], q["tile"], q["bbox"], q["scene"], q["max"]);
        var perPlace = SearchQuery.ParsePerPlace(q["latest"], q["as_of"]);
        var cells = q["cells"].ToString() switch
        {
            "" or "0" or "false" => false,
            "1" or "true" => true,
            var other => throw new FormatException($"cells must be 1 or 0, got '{other}'."),
        };
        if (query.Scene is { } sceneId && await store.GetSceneAsync(sceneId, ct) is null) return ApiProblem.NotFound($"no scene {sceneId}");
        int modelId;
        float[] vector;
        if (query.Tile is { } tileId)
        {
            if (await store.GetTileVectorAsync(tileId, ct) is not { } stored) return ApiProblem.NotFound($"no tile {tileId}");
            (modelId, vector) = stored;
        }
        else (modelId, vector) = await web.Queries.EmbedAsync(query.Text!, ct);
        var result = perPlace.Newest
            ? await store.HeatmapNewestPerPlaceAsync(vector, query.Area, query.Scene, modelId, query.MaxTiles, perPlace.AcquiredBefore, ct)
            : await store.HeatmapAsync(vector, query.Area, query.Scene, modelId, query.MaxTiles, ct);
        if (result.MoreThan is { } n)
            return ApiProblem.BadRequest($"the area holds more than {n} tiles: zoom in, ask for one scene, or raise max (at most {HeatmapQuery.Limit})");
        if (!cells) return TypedResults.Text(HeatmapQuery.GeoJson(result, query.Text ?? $"tile {query.Tile}"), "application/geo+json");
        // cells=1: one colour per cell, from the cells stored at ingest (--cells) by the query's model; tiles without them stay whole.
        if (result.Tiles.Count > HeatmapQuery.MaxCellTiles)
            return ApiProblem.BadRequest($"cells=1 draws at most {HeatmapQuery.MaxCellTiles} tiles, the area holds {result.Tiles.Count}: zoom in");
        var storedCells = (await store.GetTileCellsAsync(result.Tiles.Select(t => t.TileId).ToList(), ct))
            .Where(kv => kv.Value.ModelId == modelId).ToDictionary(kv => kv.Key, kv => kv.Value);
        return TypedResults.Text(HeatmapQuery.GeoJson(result, query.Text ?? $"tile {query.Tile}", storedCells, vector), "application/geo+json");
    }

    /// <summary>
    /// GET /api/scenes/{id}/classes: zero-shot land-use classes of a scene, its stored vectors against the [RET] vectors
    /// of one prompt per label. Bounded (web.Limits.Work): labels per request, tokens per prompt after the template,
    /// tokens in all; the prompts go through the model a few at a time and the work stops at the next pass when the
    /// client hangs up.
    /// </summary>
    private static async Task<Results<ContentHttpResult, ProblemHttpResult>> SceneClassesAsync(long id, HttpRequest req, CatalogStore store,
        ModelCache models, WebContext web, CancellationToken ct)
    {
        var q = req.Query;
        var query = LandUseQuery.Parse(id.ToString(System.Globalization.CultureInfo.InvariantCulture), q["labels"].FirstOrDefault(), null,
            q["template"].FirstOrDefault(), maxLabels: web.Limits.Work.MaxPrompts);
        try
        {
            var map = await LandUseClassifier.RunAsync(store, query, prompts => web.WithServingModelAsync(models,
                model => Task.FromResult<(int, IReadOnlyList<float[]>)>((model.ModelId, web.Limits.Work.EmbedTexts(model.Encoder, prompts, ct, "label prompt"))), ct), ct);
            return TypedResults.Text(map.GeoJson(), "application/geo+json");
        }
        catch (SceneNotFoundException e) { return ApiProblem.NotFound(e.Message); }
    }
}
