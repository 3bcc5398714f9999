using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Npgsql;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>
/// Views of the catalogue, SQL over the stored vectors and footprints plus at most a few [RET] vectors: GET /api/changes,
/// GET /api/heatmap, GET /api/scenes/{id}/classes.
/// </summary>
public static class AnalysisEndpoints
{
    public static void MapAnalysisEndpoints(this WebApplication app, WebContext web)
    {
        // What changed between two acquisitions: before/after are scene ids or date ranges (with bbox or area).
        app.MapGet("/api/changes", async (HttpRequest req, CatalogStore store, ModelCache models, CancellationToken ct) =>
        {
            ChangeQuery query;
            var q = req.Query;
            try { query = ChangeQuery.Parse(q["before"], q["after"], q["area"], q["bbox"], q["toward"], q["k"], q["min_iou"], scenePathsAllowed: false); }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            RankedChanges result;
            try
            {
                result = await ChangeRunner.RunAsync(store, query, text => web.WithServingModelAsync(models,
                    (encoder, modelId) => Task.FromResult((modelId, web.Limits.Work.EmbedTexts(encoder, [text], ct, "text")[0], (string?)encoder.Directory)), ct), ct);
            }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.RaiseException)
            {
                return Results.BadRequest(new { error = e.MessageText.Replace("rscapret_changes: ", "") });
            }
            return Results.Text(ChangeOutput.GeoJson(result, tile => $"/api/tiles/{tile}/thumbnail.png"), "application/geo+json");
        });

        // Similarity heat map: every tile of the view (bbox) or of a scene scored against a text or a stored tile.
        app.MapGet("/api/heatmap", async (HttpRequest req, CatalogStore store, CancellationToken ct) =>
        {
            HeatmapQuery query;
            var q = req.Query;
            // latest=true / as_of=DATE: one acquisition per place (the map page's heat map), never stacked ones.
            (bool Newest, DateTimeOffset? AcquiredBefore) perPlace;
            bool cells;
            try
            {
                query = HeatmapQuery.Parse(q["q"], q["tile"], q["bbox"], q["scene"], q["max"]);
                perPlace = SearchQuery.ParsePerPlace(q["latest"], q["as_of"]);
                cells = q["cells"].ToString() switch
                {
                    "" or "0" or "false" => false,
                    "1" or "true" => true,
                    var other => throw new FormatException($"cells must be 1 or 0, got '{other}'."),
                };
            }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            if (query.Scene is { } sceneId && await store.GetSceneAsync(sceneId, ct) is null) return Results.NotFound(new { error = $"no scene {sceneId}" });
            int modelId;
            float[] vector;
            if (query.Tile is { } tileId)
            {
                if (await store.GetTileVectorAsync(tileId, ct) is not { } stored) return Results.NotFound(new { error = $"no tile {tileId}" });
                (modelId, vector) = stored;
            }
            else
            {
                try { (modelId, vector) = await web.Queries.EmbedAsync(query.Text!, ct); }
                catch (QueryQueueFullException e) { return WebContext.Busy(e); }
                catch (ModelWorkLimitException e) { return Results.BadRequest(new { error = e.Message }); }
            }
            var result = perPlace.Newest
                ? await store.HeatmapNewestPerPlaceAsync(vector, query.Area, query.Scene, modelId, query.MaxTiles, perPlace.AcquiredBefore, ct)
                : await store.HeatmapAsync(vector, query.Area, query.Scene, modelId, query.MaxTiles, ct);
            if (result.MoreThan is { } n)
                return Results.BadRequest(new { error = $"the area holds more than {n} tiles: zoom in, ask for one scene, or raise max (at most {HeatmapQuery.Limit})" });
            if (!cells) return Results.Text(HeatmapQuery.GeoJson(result, query.Text ?? $"tile {query.Tile}"), "application/geo+json");
            // cells=1: one colour per cell, from the cells stored at ingest (--cells) by the query's model; tiles without them stay whole.
            if (result.Tiles.Count > HeatmapQuery.MaxCellTiles)
                return Results.BadRequest(new { error = $"cells=1 draws at most {HeatmapQuery.MaxCellTiles} tiles, the area holds {result.Tiles.Count}: zoom in" });
            var storedCells = (await store.GetTileCellsAsync(result.Tiles.Select(t => t.TileId).ToList(), ct))
                .Where(kv => kv.Value.ModelId == modelId).ToDictionary(kv => kv.Key, kv => kv.Value);
            return Results.Text(HeatmapQuery.GeoJson(result, query.Text ?? $"tile {query.Tile}", storedCells, vector), "application/geo+json");
        });

        // Zero-shot land-use classes of a scene: its stored vectors against the [RET] vectors of one prompt per label.
        // Bounded (web.Limits.Work): labels per request, tokens per prompt after the template, tokens in all; the prompts
        // go through the model a few at a time and the work stops at the next pass when the client hangs up.
        app.MapGet("/api/scenes/{id:long}/classes", async (long id, HttpRequest req, CatalogStore store, ModelCache models, CancellationToken ct) =>
        {
            LandUseQuery query;
            var q = req.Query;
            try
            {
                query = LandUseQuery.Parse(id.ToString(System.Globalization.CultureInfo.InvariantCulture), q["labels"].FirstOrDefault(), null,
                    q["template"].FirstOrDefault(), maxLabels: web.Limits.Work.MaxPrompts);
            }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            try
            {
                var map = await LandUseClassifier.RunAsync(store, query, prompts => web.WithServingModelAsync(models,
                    (encoder, modelId) => Task.FromResult<(int, IReadOnlyList<float[]>)>((modelId, web.Limits.Work.EmbedTexts(encoder, prompts, ct, "label prompt"))), ct), ct);
                return Results.Text(map.GeoJson(), "application/geo+json");
            }
            catch (SceneNotFoundException e) { return Results.NotFound(new { error = e.Message }); }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
        });
    }
}
