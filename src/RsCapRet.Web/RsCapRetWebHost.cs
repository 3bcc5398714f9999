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
    /// Searches use <paramref name="modelDirectory"/>; with <paramref name="followActivatedModel"/> (serve without --model
    /// or RSCAPRET_MODEL) they use the activated model instead when one is (`rscapret models activate`), following a new
    /// activation within <see cref="ServingModel.Refresh"/>, and <paramref name="modelDirectory"/> only while none is.
    /// </summary>
    public static WebApplication Build(string connectionString, string urls, string modelDirectory, bool withWorker,
        DashboardCredentials? credentials = null, ScenePathDisplay? scenePaths = null, TileDiskCache? tileCache = null,
        string? readConnectionString = null, bool followActivatedModel = false, TimeSpan? modelRefresh = null)
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
        // The activated model's folder is not on this machine: 503 naming the model (not a 500).
        app.Use(async (ctx, next) =>
        {
            try { await next(ctx); }
            catch (Exception e) when (NotAvailable(e) is { } missing && !ctx.Response.HasStarted)
            {
                ctx.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                ctx.Response.Headers.RetryAfter = "30";
                await ctx.Response.WriteAsJsonAsync(new { error = missing.Message });
            }
        });
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
        // The serving model: this folder, or the activated model's when following (re-read every couple of seconds).
        var serving = new ServingModel(app.Services.GetRequiredService<CatalogStore>(), modelDirectory, followActivatedModel, modelRefresh,
            app.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("RsCapRet.Web.ServingModel"));
        var queries = new QueryVectorBatcher(app.Services.GetRequiredService<ModelCache>(), serving.DirectoryAsync,
            encoder => serving.ModelIdAsync(encoder), QueryVectorOptions.FromEnvironment());
        app.Lifetime.ApplicationStopping.Register(() => queries.DisposeAsync().AsTask().GetAwaiter().GetResult());
        var web = new WebContext(serving, scenePaths, queries);
        app.MapSearchEndpoints(web);
        app.MapAnalysisEndpoints(web);
        app.MapSceneEndpoints(web, tileCache ??= TileDiskCache.FromEnvironment());   // the imagery endpoints below share this cache
        app.MapImageryEndpoints(web, tileCache ?? TileDiskCache.FromEnvironment());
        return app;
    }

    private static ModelNotAvailableException? NotAvailable(Exception? e) => e switch
    {
        null => null,
        ModelNotAvailableException m => m,
        AggregateException a => a.InnerExceptions.Select(NotAvailable).FirstOrDefault(m => m is not null),
        _ => NotAvailable(e.InnerException),
    };
}

/// <summary>What the endpoint groups share: the serving model, how scene paths are shown, search through the model.</summary>
public sealed class WebContext(ServingModel serving, ScenePathDisplay scenePaths, QueryVectorBatcher queries)
{
    /// <summary>Which model searches use (it may change while the host runs: see <see cref="WithServingModelAsync{T}"/>).</summary>
    public ServingModel Serving => serving;
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

    /// <summary>
    /// Runs <paramref name="work"/> on the serving model with its catalogue id: the folder is taken once, so the vectors
    /// it makes and the model id it filters by belong to the same model even while an activation switches the host.
    /// </summary>
    public async Task<T> WithServingModelAsync<T>(ModelCache models, Func<RsCapRetTileEncoder, int, Task<T>> work, CancellationToken ct)
    {
        var directory = await serving.DirectoryAsync(ct);
        return await models.WithModelAsync(directory, async encoder => await work(encoder, await serving.ModelIdAsync(encoder, ct)), ct);
    }

    /// <summary>The query vector comes from the serving model (text or image), and only that model's tiles are searched.</summary>
    public Task<IReadOnlyList<TileHit>> SearchWithModelAsync(CatalogStore store, ModelCache models, Func<RsCapRetTileEncoder, float[]> vectorOf,
        SearchQuery query, CancellationToken ct) =>
        WithServingModelAsync(models, (encoder, modelId) => store.SearchAsync(vectorOf(encoder), query.K, query.Filter with { ModelId = modelId }, ct), ct);

    public IResult GeoJsonResult(IReadOnlyList<TileHit> hits) =>
        Results.Text(SearchOutput.GeoJson(Shown(hits), h => $"/api/tiles/{h.TileId}/thumbnail.png"), "application/geo+json");

    public IReadOnlyList<TileHit> Shown(IReadOnlyList<TileHit> hits) => hits.Select(h => h with { ScenePath = scenePaths.Name(h.ScenePath) }).ToList();
}
