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
        string? readConnectionString = null, bool followActivatedModel = false, TimeSpan? modelRefresh = null, HostLimits? limits = null,
        TrustedProxies? trustedProxies = null)
    {
        limits ??= HostLimits.FromEnvironment();
        trustedProxies ??= TrustedProxies.FromEnvironment();
        readConnectionString ??= RsCapRetDatabase.ResolveReadConnectionString();
        scenePaths ??= ScenePathDisplay.FromEnvironment();
        var builder = WebApplication.CreateSlimBuilder();
        // No line per request at information: a summary, and each request at debug (RequestLogging).
        RequestLogging.Configure(builder.Logging, Environment.GetEnvironmentVariable("RSCAPRET_REQUEST_LOG"));
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
        // Behind configured reverse proxies only: the client's address from X-Forwarded-For (the password brake's key).
        trustedProxies?.Apply(app);
        app.UseRequestLogging(RequestLogging.SummaryInterval());
        app.UseSecurityHeaders();   // CSP, nosniff, no framing, no referrer: on every response, errors included
        app.UseJsonErrors();
        // The activated model's folder is not on this machine: 503 naming the model (not a 500). The model's queue is
        // full: 503 with Retry-After. A request whose client has gone: no answer (nobody reads it), not a 500.
        app.Use(async (ctx, next) =>
        {
            try { await next(ctx); }
            catch (Exception e) when (NotAvailable(e) is { } missing && !ctx.Response.HasStarted)
            {
                ctx.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                ctx.Response.Headers.RetryAfter = "30";
                await ctx.Response.WriteAsJsonAsync(new { error = missing.Message });
            }
            catch (QueryQueueFullException busy) when (!ctx.Response.HasStarted)
            {
                await WebContext.Busy(busy).ExecuteAsync(ctx);
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { }
        });
        app.UseRequestOriginChecks(RequestOriginChecks.AllowedHostsFromEnvironment(credentials is not null));
        if (credentials is null) app.UseHangfireDashboard("/hangfire"); // Hangfire's default: local requests only
        else
        {
            // Wrong passwords are braked per client address (AuthThrottle): 429 with Retry-After, the delay doubling.
            var throttle = new AuthThrottle(limits.Auth,
                app.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("RsCapRet.Web.Auth"));
            app.Use(async (ctx, next) =>
            {
                var client = ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown";
                if (throttle.Blocked(client) is { } left)
                {
                    ctx.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                    ctx.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(left.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                    await ctx.Response.WriteAsJsonAsync(new { error = $"too many wrong passwords from this client; retry in {Math.Ceiling(left.TotalSeconds):0} s" });
                    return;
                }
                string? authorization = ctx.Request.Headers.Authorization;
                if (credentials.Accepts(authorization)) { throttle.Succeeded(client); await next(ctx); return; }
                if (!string.IsNullOrEmpty(authorization)) throttle.Failed(client);   // a request without credentials is no guess
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
            encoder => serving.ModelIdAsync(encoder), QueryVectorOptions.FromEnvironment() with { Limits = limits.Work });
        app.Lifetime.ApplicationStopping.Register(() => queries.DisposeAsync().AsTask().GetAwaiter().GetResult());
        var web = new WebContext(serving, scenePaths, queries, limits);
        ((IApplicationBuilder)app).Properties[WebContextKey] = web;
        app.MapSearchEndpoints(web);
        app.MapAnalysisEndpoints(web);
        app.MapSceneEndpoints(web, tileCache ??= TileDiskCache.FromEnvironment());   // the imagery endpoints below share this cache
        app.MapImageryEndpoints(web, tileCache ?? TileDiskCache.FromEnvironment());
        app.MapLocalizeEndpoints(web);   // where in a tile: /api/tiles/{id}/cells
        return app;
    }

    private const string WebContextKey = "rscapret.web";

    /// <summary>What the endpoint groups of a host built here share (its model queue, limits...), for tests and tools.</summary>
    public static WebContext ContextOf(WebApplication app) => (WebContext)((IApplicationBuilder)app).Properties[WebContextKey]!;

    private static ModelNotAvailableException? NotAvailable(Exception? e) => e switch
    {
        null => null,
        ModelNotAvailableException m => m,
        AggregateException a => a.InnerExceptions.Select(NotAvailable).FirstOrDefault(m => m is not null),
        _ => NotAvailable(e.InnerException),
    };
}

/// <summary>What the endpoint groups share: the serving model, how scene paths are shown, search through the model.</summary>
public sealed class WebContext(ServingModel serving, ScenePathDisplay scenePaths, QueryVectorBatcher queries, HostLimits? limits = null)
{
    /// <summary>What one request may make the model do, and how many may use it at once.</summary>
    public HostLimits Limits { get; } = limits ?? new HostLimits();
    /// <summary>Requests running the model or waiting for it (at most <see cref="HostLimits.ModelQueue"/>; beyond: 503).</summary>
    public ModelWorkGate ModelWork { get; } = new((limits ?? new HostLimits()).ModelQueue, (limits ?? new HostLimits()).BusyRetryAfterSeconds);

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
    /// Each such request takes a place in <see cref="ModelWork"/> (503 when it is full) and waits for the model with
    /// <paramref name="ct"/>: a client that hangs up while it waits never gets the model.
    /// </summary>
    public Task<T> WithServingModelAsync<T>(ModelCache models, Func<RsCapRetTileEncoder, int, Task<T>> work, CancellationToken ct) =>
        ModelWork.RunAsync(async started =>
        {
            var directory = await serving.DirectoryAsync(ct);
            return await models.WithModelAsync(directory, async encoder =>
            {
                ct.ThrowIfCancellationRequested();
                started();
                return await work(encoder, await serving.ModelIdAsync(encoder, ct));
            }, ct);
        });

    /// <summary>The query vector comes from the serving model (text or image), and only that model's tiles are searched.</summary>
    public Task<IReadOnlyList<TileHit>> SearchWithModelAsync(CatalogStore store, ModelCache models, Func<RsCapRetTileEncoder, float[]> vectorOf,
        SearchQuery query, CancellationToken ct) =>
        WithServingModelAsync(models, (encoder, modelId) => store.SearchAsync(vectorOf(encoder), query.K, query.Offset, query.Filter with { ModelId = modelId }, ct), ct);

    public IResult GeoJsonResult(IReadOnlyList<TileHit> hits) =>
        Results.Text(SearchOutput.GeoJson(Shown(hits), h => $"/api/tiles/{h.TileId}/thumbnail.png"), "application/geo+json");

    /// <summary>Search results with relevance (issue 29): see <see cref="SearchOutput.GeoJson(RankedHits, Func{TileHit, string}?)"/>.</summary>
    public IResult GeoJsonResult(RankedHits ranked) =>
        Results.Text(SearchOutput.GeoJson(ranked with { Hits = Shown(ranked.Hits) }, h => $"/api/tiles/{h.TileId}/thumbnail.png"), "application/geo+json");

    public IReadOnlyList<TileHit> Shown(IReadOnlyList<TileHit> hits) => hits.Select(h => h with { ScenePath = scenePaths.Name(h.ScenePath) }).ToList();
}
