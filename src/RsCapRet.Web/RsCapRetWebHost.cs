using Hangfire;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>
/// The HTTP host of `rscapret serve`: the map page at /, the Hangfire dashboard (local requests only unless basic-auth
/// credentials are set), and the endpoint groups — search (<see cref="SearchEndpoints"/>), views of the catalogue
/// (<see cref="AnalysisEndpoints"/>: changes, heat map, land use) and imagery (<see cref="ImageryEndpoints"/>: map
/// tiles, thumbnails). Errors are 4xx JSON (<see cref="JsonErrors"/>); requests from other origins and hosts are
/// refused (<see cref="RequestOriginChecks"/>).
/// </summary>
public static class RsCapRetWebHost
{
    /// <summary>
    /// Scene paths in its answers are shown by <paramref name="scenePaths"/> (default: from RSCAPRET_ARCHIVE_ROOT);
    /// rendered map tiles go to <paramref name="tileCache"/> (default: <see cref="TileDiskCache.FromEnvironment"/>).
    /// Searches and catalogue views read from <paramref name="readConnectionString"/> when given (a streaming replica;
    /// default: RSCAPRET_DB_READ), writes — models, jobs — go to <paramref name="connectionString"/>.
    /// </summary>
    public static WebApplication Build(string connectionString, string urls, string modelDirectory, bool withWorker,
        DashboardCredentials? credentials = null, ScenePathDisplay? scenePaths = null, TileDiskCache? tileCache = null,
        string? readConnectionString = null)
    {
        readConnectionString ??= RsCapRetDatabase.ResolveReadConnectionString();
        scenePaths ??= ScenePathDisplay.FromEnvironment();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(JsonErrors.ConfigureKestrel);   // over-long URLs reach UseJsonErrors
        builder.Services.AddRsCapRetJobs(connectionString);
        // Hangfire's dashboard validates an anti-forgery token on its POST actions when this service is registered.
        builder.Services.AddAntiforgery();
        if (withWorker) builder.Services.AddRsCapRetWorker(JobQueues.All, 1);
        var reads = readConnectionString is null ? null : RsCapRetDatabase.CreateDataSource(readConnectionString);
        builder.Services.AddSingleton(sp => new CatalogStore(sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), reads));
        var app = builder.Build();
        if (reads is not null) app.Lifetime.ApplicationStopped.Register(reads.Dispose);
        app.UseJsonErrors();
        app.UseRequestOriginChecks(RequestOriginChecks.AllowedHostsFromEnvironment(credentials is not null));
        if (credentials is null) app.UseHangfireDashboard("/hangfire"); // Hangfire's default: local requests only
        else
        {
            app.Use(async (ctx, next) =>
            {
                if (credentials.Accepts(ctx.Request.Headers.Authorization)) { await next(ctx); return; }
                ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
                ctx.Response.Headers.WWWAuthenticate = "Basic realm=\"rscapret\"";
            });
            app.UseHangfireDashboard("/hangfire", new DashboardOptions { Authorization = [] }); // the middleware above guards it
        }
        app.MapMapPage(); // GET /: the search page (links to /hangfire)

        // Text queries: concurrent requests share forward passes, repeated texts hit a cache (QueryVectorBatcher).
        var dataSource = app.Services.GetRequiredService<Npgsql.NpgsqlDataSource>();
        int? servingModelId = null;   // read and written by the batcher's single loop only
        var queries = new QueryVectorBatcher(app.Services.GetRequiredService<ModelCache>(), modelDirectory,
            async encoder => servingModelId ??= await new CatalogStore(dataSource).RegisterModelAsync(encoder.Identity), QueryVectorOptions.FromEnvironment());
        app.Lifetime.ApplicationStopping.Register(() => queries.DisposeAsync().AsTask().GetAwaiter().GetResult());
        var web = new WebContext(modelDirectory, scenePaths, queries);
        app.MapSearchEndpoints(web);
        app.MapAnalysisEndpoints(web);
        app.MapImageryEndpoints(web, tileCache ?? TileDiskCache.FromEnvironment());
        return app;
    }
}

/// <summary>What the endpoint groups share: the serving model, how scene paths are shown, search through the model.</summary>
public sealed class WebContext(string modelDirectory, ScenePathDisplay scenePaths, QueryVectorBatcher queries)
{
    public string ModelDirectory => modelDirectory;
    public ScenePathDisplay ScenePaths => scenePaths;
    public QueryVectorBatcher Queries => queries;
    /// <summary>Which scene files may be read on a request's behalf; one for thumbnails and map tiles, so each file is hashed once.</summary>
    public RegisteredSceneFiles SceneFiles { get; } = new();

    /// <summary>503 with Retry-After: the query queue is full (back-pressure, not an error of the request).</summary>
    public static IResult Busy(QueryQueueFullException e)
    {
        return new BusyResult(e);
    }

    private sealed class BusyResult(QueryQueueFullException e) : IResult
    {
        public Task ExecuteAsync(HttpContext http)
        {
            http.Response.Headers.RetryAfter = e.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Results.Json(new { error = e.Message }, statusCode: StatusCodes.Status503ServiceUnavailable).ExecuteAsync(http);
        }
    }

    /// <summary>The query vector comes from the serving model (text or image), and only that model's tiles are searched.</summary>
    public Task<IReadOnlyList<TileHit>> SearchWithModelAsync(CatalogStore store, ModelCache models, Func<RsCapRetTileEncoder, float[]> vectorOf,
        SearchQuery query, CancellationToken ct) =>
        models.WithModelAsync(modelDirectory, async encoder =>
        {
            var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
            return await store.SearchAsync(vectorOf(encoder), query.K, query.Filter with { ModelId = modelId }, ct);
        }, ct);

    public IResult GeoJsonResult(IReadOnlyList<TileHit> hits) =>
        Results.Text(SearchOutput.GeoJson(Shown(hits), h => $"/api/tiles/{h.TileId}/thumbnail.png"), "application/geo+json");

    public IReadOnlyList<TileHit> Shown(IReadOnlyList<TileHit> hits) => hits.Select(h => h with { ScenePath = scenePaths.Name(h.ScenePath) }).ToList();
}
