using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RsCapRet.Core;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>Imagery read from the registered scene files: GET /tiles/{z}/{x}/{y}.png (the map's base layer) and tile thumbnails.</summary>
public static class ImageryEndpoints
{
    public static void MapImageryEndpoints(this WebApplication app, WebContext web, TileDiskCache tileCache)
    {
        // Imagery: Web Mercator tiles rendered from the ingested scenes (the map page's base layer), cached on disk.
        var mapTiles = new MapTileService(tileCache, web.SceneFiles);
        app.Lifetime.ApplicationStopped.Register(mapTiles.Dispose);
        app.MapGet("/tiles/{z}/{x}/{y}.png", async (string z, string x, string y, HttpRequest req, HttpResponse res, CatalogStore store,
            ILoggerFactory logs, CancellationToken ct) =>
        {
            MapTileAddress tile;
            long? scene = null;
            DateTimeOffset? asOfBefore = null;   // as_of=DATE: the scenes acquired on or before that day (the page's "as of")
            try
            {
                static int Int(string s, string name) => int.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v)
                    ? v : throw new FormatException($"{name} must be a whole number, got '{s}'");
                tile = MapTileAddress.Checked(Int(z, "zoom"), Int(x, "x"), Int(y, "y"));
                if (req.Query["scene"] is { Count: > 0 } s)
                    scene = long.TryParse(s[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) && id > 0
                        ? id : throw new FormatException($"scene must be a positive scene id, got '{s[0]}'");
                if (req.Query["as_of"] is { Count: > 0 } asOf) asOfBefore = SearchQuery.ParsePerPlace(null, asOf[0]).AcquiredBefore;
            }
            catch (Exception e) when (e is FormatException or ArgumentOutOfRangeException)
            {
                return Results.BadRequest(new { error = ErrorMessages.OneLine(e) });
            }
            var result = await mapTiles.RenderAsync(store, tile, scene, ct, asOfBefore);
            if (result.Missing.Count > 0)
            {
                // The tile is drawn without them; the scenes are named (by id, never by path) for the page and the log.
                res.Headers["X-RsCapRet-Missing-Scenes"] = string.Join(",", result.Missing.Select(m => m.SceneId));
                logs.CreateLogger("RsCapRet.Tiles").LogWarning("tile {Z}/{X}/{Y}: drawn without {Scenes}", tile.Z, tile.X, tile.Y,
                    string.Join("; ", result.Missing.Select(m => $"scene {m.SceneId}: {m.Problem}")));
            }
            res.Headers["X-RsCapRet-Tile-Cache"] = result.FromCache ? "hit" : "miss";
            res.Headers.CacheControl = "max-age=60";
            return Results.File(result.Png, "image/png");
        });

        app.MapGet("/api/tiles/{id:long}/thumbnail.png", async (long id, CatalogStore store, CancellationToken ct) =>
        {
            var tile = await store.GetTileAsync(id, ct);
            if (tile is null) return Results.NotFound(new { error = $"no tile {id}" });
            // Only the registered scene, unchanged since ingestion, is read on a request's behalf.
            var scene = await store.GetSceneFileAsync(tile.SceneId, ct);
            if ((scene is null ? "the scene is no longer registered" : await web.SceneFiles.ProblemAsync(scene, ct)) is { } problem)
                return Results.Json(new { error = $"{web.ScenePaths.Name(tile.ScenePath)}: {problem}" }, statusCode: StatusCodes.Status410Gone);
            try
            {
                using var tiler = SceneTiler.Open(tile.ScenePath, new TilingOptions { TileSize = 256, AllowMissingCrs = true, MaxNodataFraction = 1 });
                var image = tiler.ReadWindow(new PixelWindow(tile.PxX, tile.PxY, tile.PxWidth, tile.PxHeight), 256);
                return Results.File(PngEncoder.Encode(image), "image/png");
            }
            catch (RasterException e) { return Results.Json(new { error = web.ScenePaths.Redact(e.Message, tile.ScenePath) }, statusCode: StatusCodes.Status410Gone); }
        });
    }
}
