using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RsCapRet.Core;
using RsCapRet.Queries;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>Imagery read from the registered scene files: GET /tiles/{z}/{x}/{y}.png (the map's base layer) and tile thumbnails.</summary>
public static class ImageryEndpoints
{
    public static void MapImageryEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/tiles/{z}/{x}/{y}.png", MapTileAsync);
        endpoints.MapGet("/api/tiles/{id:long}/thumbnail.png", ThumbnailAsync);
    }

    /// <summary>
    /// GET /tiles/{z}/{x}/{y}.png: a Web Mercator tile rendered from the ingested scenes (the map page's base layer),
    /// cached on disk; scene=ID draws one scene, as_of=DATE the scenes acquired on or before that day (the page's "as of").
    /// The address is checked by <see cref="MapTileAddress.Checked"/>, whose refusals name z, x or y (a 400 through
    /// <see cref="BadInputFilter"/>).
    /// </summary>
    private static async Task<Results<FileContentHttpResult, ProblemHttpResult>> MapTileAsync(string z, string x, string y, HttpRequest req,
        HttpResponse res, CatalogStore store, MapTileService mapTiles, ILoggerFactory logs, CancellationToken ct)
    {
        var tile = MapTileAddress.Checked(Int(z, "zoom"), Int(x, "x"), Int(y, "y"));
        long? scene = null;
        DateTimeOffset? asOfBefore = null;
        if (req.Query["scene"] is { Count: > 0 } s)
            scene = long.TryParse(s[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) && id > 0
                ? id : throw new FormatException($"scene must be a positive scene id, got '{s[0]}'");
        if (req.Query["as_of"] is { Count: > 0 } asOf) asOfBefore = SearchQuery.ParsePerPlace(null, asOf[0]).AcquiredBefore;
        var result = await mapTiles.RenderAsync(store, tile, scene, asOfBefore, ct);
        if (result.Missing.Count > 0)
        {
            // The tile is drawn without them; the scenes are named (by id, never by path) for the page and the log.
            res.Headers["X-RsCapRet-Missing-Scenes"] = string.Join(",", result.Missing.Select(m => m.SceneId));
            logs.CreateLogger("RsCapRet.Tiles").LogWarning("tile {Z}/{X}/{Y}: drawn without {Scenes}", tile.Z, tile.X, tile.Y,
                string.Join("; ", result.Missing.Select(m => $"scene {m.SceneId}: {m.Problem}")));
        }
        res.Headers["X-RsCapRet-Tile-Cache"] = result.FromCache ? "hit" : "miss";
        res.Headers.CacheControl = "max-age=60";
        return TypedResults.File(result.Png, "image/png");
    }

    private static int Int(string s, string name) => int.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v)
        ? v : throw new FormatException($"{name} must be a whole number, got '{s}'");

    /// <summary>GET /api/tiles/{id}/thumbnail.png: a stored tile's imagery, read from its registered scene file only if it is unchanged since ingestion.</summary>
    private static async Task<Results<FileContentHttpResult, ProblemHttpResult>> ThumbnailAsync(long id, CatalogStore store, WebContext web, CancellationToken ct)
    {
        var tile = await store.GetTileAsync(id, ct);
        if (tile is null) return ApiProblem.NotFound($"no tile {id}");
        var scene = await store.GetSceneFileAsync(tile.SceneId, ct);
        if ((scene is null ? "the scene is no longer registered" : await web.SceneFiles.ProblemAsync(scene, ct)) is { } problem)
            return ApiProblem.Result(StatusCodes.Status410Gone, $"{web.ScenePaths.Name(tile.ScenePath)}: {problem}");
        try
        {
            using var tiler = SceneTiler.Open(tile.ScenePath, new TilingOptions { TileSize = 256, AllowMissingCrs = true, MaxNodataFraction = 1 }, ct);
            var image = tiler.ReadWindow(new PixelWindow(tile.PxX, tile.PxY, tile.PxWidth, tile.PxHeight), 256);
            return TypedResults.File(PngEncoder.Encode(image), "image/png");
        }
        catch (RasterException e) { return ApiProblem.Result(StatusCodes.Status410Gone, web.ScenePaths.Redact(e.Message, tile.ScenePath)); }
    }
}
