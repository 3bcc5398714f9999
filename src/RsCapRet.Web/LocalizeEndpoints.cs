using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using RsCapRet.Jobs;
using RsCapRet.Model;
using RsCapRet.Pipeline;
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
    public static void MapLocalizeEndpoints(this WebApplication app, WebContext web)
    {
        app.MapGet("/api/tiles/{id:long}/cells", async (long id, HttpRequest req, CatalogStore store, ModelCache models, CancellationToken ct) =>
        {
            string? text = req.Query["q"];
            long? like = null;
            try
            {
                var hasTile = !string.IsNullOrEmpty(req.Query["tile"]);
                if (hasTile && text is not null) throw new FormatException("give either q (text) or tile (a tile id), not both.");
                if (hasTile) like = SearchQuery.ParseTileId(req.Query["tile"]);
                else if (text is null) throw new FormatException("give q (the text to look for) or tile (a tile id).");
                else if (string.IsNullOrWhiteSpace(text)) throw new FormatException("The query text is empty.");
                if (id <= 0) throw new FormatException($"tile id must be positive, got {id}.");
            }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            try
            {
                var result = await web.WithServingModelAsync(models, async (encoder, _) =>
                {
                    if (like is { } other)
                    {
                        var (_, tiler, otherImage) = await TileLocalizer.ReadAsync(store, web.SceneFiles, other, encoder.InputSize, ct);
                        tiler.Dispose();
                        return await TileLocalizer.LocalizeAsync(store, web.SceneFiles, id, encoder.InputSize, $"tile {other}", image =>
                        {
                            var both = encoder.EncodeCells([image, otherImage]);
                            return (both[0], both[1].Tile);
                        }, ct);
                    }
                    // Bounded like every text the host embeds (tokens per prompt, cancellation).
                    var vector = web.Limits.Work.EmbedTexts(encoder, [text!.Trim()], ct, "query text")[0];
                    return await TileLocalizer.LocalizeAsync(store, web.SceneFiles, id, encoder.InputSize, text.Trim(), image => (encoder.EncodeCells([image])[0], vector), ct);
                }, ct);
                return Results.Text(result.GeoJson(web.ScenePaths.Name(result.Tile.ScenePath)), "application/geo+json");
            }
            catch (TileNotFoundException e) { return Results.NotFound(new { error = e.Message }); }
            catch (TileImageryUnavailableException e)
            {
                return Results.Json(new { error = $"{web.ScenePaths.Name(e.ScenePath)}: {web.ScenePaths.Redact(e.Problem, e.ScenePath)}" }, statusCode: StatusCodes.Status410Gone);
            }
            catch (CellVectorsNotAvailableException e) { return Results.Json(new { error = e.Message }, statusCode: StatusCodes.Status501NotImplemented); }
            catch (ModelWorkLimitException e) { return Results.BadRequest(new { error = e.Message }); }
        });
    }
}
