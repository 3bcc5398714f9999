using Hangfire;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Web;

/// <summary>
/// The HTTP host of `rscapret serve`: the map page at /, the Hangfire dashboard (local requests only unless basic-auth
/// credentials are set), and the endpoint groups — search (<see cref="SearchEndpoints"/>), views of the catalogue
/// (<see cref="AnalysisEndpoints"/>: changes, heat map, land use) and imagery (<see cref="ImageryEndpoints"/>: map
/// tiles, thumbnails). Errors are 4xx problem details with an "error" member (<see cref="ApiProblem"/>,
/// <see cref="JsonErrors"/>; bad parameters: <see cref="BadInputFilter"/>); requests from other origins and hosts are
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
    /// <paramref name="jobs"/> registers Hangfire for the dashboard and enqueueing, and a worker when the host runs one
    /// (RsCapRet.Cli.WebHostJobs: Dashboard, DashboardAndWorker), with the host's configuration and <paramref name="connectionString"/>.
    /// </summary>
    public static WebApplication Build(string connectionString, string urls, string modelDirectory, Action<IServiceCollection, Microsoft.Extensions.Configuration.IConfiguration, string> jobs,
        DashboardCredentials? credentials = null, ScenePathDisplay? scenePaths = null, TileDiskCache? tileCache = null,
        string? readConnectionString = null, bool followActivatedModel = false, TimeSpan? modelRefresh = null, HostLimits? limits = null,
        TrustedProxies? trustedProxies = null, string? chatAdapter = null)
    {
        limits ??= HostLimits.FromEnvironment();
        trustedProxies ??= TrustedProxies.FromEnvironment();
        readConnectionString ??= RsCapRetDatabase.ResolveReadConnectionString();
        scenePaths ??= ScenePathDisplay.FromEnvironment();
        var builder = WebApplication.CreateSlimBuilder();
        // Every options class the host reads, bound from its configuration and checked before it starts (one message per bad value).
        foreach (var add in SettingsRegistration.HostSettings) add(builder.Services, builder.Configuration);
        var settings = Core.Configuration.EnvironmentSettings.Load<WebOptions>(builder.Configuration);
        // No line per request at information: a summary, and each request at debug (RequestLogging).
        RequestLogging.Configure(builder.Logging, settings.RequestLog);
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(JsonErrors.ConfigureKestrel);   // over-long URLs reach UseJsonErrors
        // Hangfire (the dashboard's storage, the job client, a worker when asked) as the caller registers it (RsCapRet.Cli.WebHostJobs).
        jobs(builder.Services, builder.Configuration, connectionString);
        builder.Services.TryAddSingleton(_ => RsCapRetDatabase.CreateDataSource(connectionString));
        // The chat's adapter: the one given (serve --chat-adapter), else RSCAPRET_CHAT_ADAPTER, else each model folder's own.
        if (chatAdapter is not null) builder.Services.TryAddSingleton(_ => new ModelCache(chatAdapter: chatAdapter));
        builder.Services.TryAddSingleton<ModelCache>();
        builder.Services.TryAddSingleton(TimeProvider.System);   // the auth brake's clock (a test's own through `jobs`)
        // Hangfire's dashboard validates an anti-forgery token on its POST actions when this service is registered.
        builder.Services.AddAntiforgery();
        var reads = readConnectionString is null ? null : RsCapRetDatabase.CreateDataSource(readConnectionString);
        builder.Services.AddSingleton(sp => new CatalogStore(sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), reads));
        // The serving model: this folder, or the activated model's when following (re-read every couple of seconds);
        // the one service every endpoint asks for the model and its catalogue id (ServingModel.UseAsync, the batcher).
        builder.Services.AddSingleton(sp => new ServingModel(sp.GetRequiredService<CatalogStore>(), modelDirectory, followActivatedModel, modelRefresh,
            sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("RsCapRet.Web.ServingModel")));
        // Text queries: concurrent requests share forward passes, repeated texts hit a cache (QueryVectorBatcher).
        builder.Services.AddSingleton(sp => new WebContext(sp.GetRequiredService<ServingModel>(), scenePaths,
            new QueryVectorBatcher(sp.GetRequiredService<ModelCache>(), sp.GetRequiredService<ServingModel>(),
                QueryVectorOptions.FromEnvironment() with { Limits = limits.Work }), limits));
        // Rendered map tiles: the scene endpoints' deletions and the imagery endpoints share this cache.
        tileCache ??= TileDiskCache.FromEnvironment();
        builder.Services.AddSingleton(tileCache);
        builder.Services.AddSingleton(sp => new MapTileService(tileCache, sp.GetRequiredService<WebContext>().SceneFiles));
        var app = builder.Build();
        if (reads is not null) app.Lifetime.ApplicationStopped.Register(reads.Dispose);
        // Behind configured reverse proxies only: the client's address from X-Forwarded-For (the password brake's key).
        trustedProxies?.Apply(app);
        app.UseRequestLogging(RequestLogging.SummaryInterval(settings.RequestSummarySeconds));
        app.UseSecurityHeaders();   // CSP, nosniff, no framing, no referrer: on every response, errors included
        app.UseJsonErrors();
        // The activated model's folder is not on this machine: 503 naming the model (not a 500). The model's queue is
        // full: 503 with Retry-After. A request whose client has gone: no answer (nobody reads it), not a 500.
        app.Use(async (ctx, next) =>
        {
            try { await next(ctx); }
            catch (Exception e) when (NotAvailable(e) is { } missing && !ctx.Response.HasStarted)
            {
                ctx.Response.Headers.RetryAfter = "30";
                await ApiProblem.WriteAsync(ctx, StatusCodes.Status503ServiceUnavailable, missing.Message);
            }
            catch (QueryQueueFullException busy) when (!ctx.Response.HasStarted)
            {
                await WebContext.WriteBusyAsync(ctx, busy);
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { }
        });
        app.UseRequestOriginChecks(RequestOriginChecks.AllowedHostsFromEnvironment(credentials is not null));
        if (credentials is null) app.UseHangfireDashboard("/hangfire"); // Hangfire's default: local requests only
        else
        {
            // Wrong passwords are braked per client address (AuthThrottle): 429 with Retry-After, the delay doubling.
            var throttle = new AuthThrottle(limits.Auth,
                app.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("RsCapRet.Web.Auth"),
                app.Services.GetRequiredService<TimeProvider>());
            app.Use(async (ctx, next) =>
            {
                var client = ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown";
                if (throttle.Blocked(client) is { } left)
                {
                    ctx.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(left.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                    await ApiProblem.WriteAsync(ctx, StatusCodes.Status429TooManyRequests,
                        $"too many wrong passwords from this client; retry in {Math.Ceiling(left.TotalSeconds):0} s");
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

        // The host stops what it started: the query loop (its waiting queries are cancelled) and the open scene files.
        var web = app.Services.GetRequiredService<WebContext>();
        app.Lifetime.ApplicationStopping.Register(() => web.Queries.DisposeAsync().AsTask().GetAwaiter().GetResult());
        app.Lifetime.ApplicationStopped.Register(app.Services.GetRequiredService<MapTileService>().Dispose);
        // Bad parameters are 400 problems on every endpoint group (BadInputFilter): the handlers parse without try/catch.
        var endpoints = app.MapGroup("/").AddEndpointFilter<BadInputFilter>();
        endpoints.MapSearchEndpoints();
        endpoints.MapAnalysisEndpoints();
        endpoints.MapSceneEndpoints();
        endpoints.MapImageryEndpoints();
        endpoints.MapLocalizeEndpoints();   // where in a tile: /api/tiles/{id}/cells
        endpoints.MapChatEndpoints();       // the map page's dialogue: POST /api/chat (issue 34)
        return app;
    }

    /// <summary>What the endpoint groups of a host built here share (its model queue, limits...), for tests and tools.</summary>
    public static WebContext ContextOf(WebApplication app) => app.Services.GetRequiredService<WebContext>();

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
    public static Task WriteBusyAsync(HttpContext http, QueryQueueFullException e)
    {
        http.Response.Headers.RetryAfter = e.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return ApiProblem.WriteAsync(http, StatusCodes.Status503ServiceUnavailable, e.Message);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the serving model with its catalogue id: the folder is taken once, so the vectors
    /// it makes and the model id it filters by belong to the same model even while an activation switches the host.
    /// Each such request takes a place in <see cref="ModelWork"/> (503 when it is full) and waits for the model with
    /// <paramref name="ct"/>: a client that hangs up while it waits never gets the model.
    /// </summary>
    public Task<T> WithServingModelAsync<T>(ModelCache models, Func<ServedModel, Task<T>> work, CancellationToken ct) =>
        ModelWork.RunAsync(started => serving.UseAsync(models, model =>
        {
            started();
            return work(model);
        }, ct));

    /// <summary>The query vector comes from the serving model (text or image), and only that model's tiles are searched.</summary>
    public Task<IReadOnlyList<TileHit>> SearchWithModelAsync(CatalogStore store, ModelCache models, Func<RsCapRetTileEncoder, float[]> vectorOf,
        SearchQuery query, CancellationToken ct) =>
        WithServingModelAsync(models, model => store.SearchAsync(vectorOf(model.Encoder), query.K, query.Offset, query.Filter with { ModelId = model.ModelId }, ct), ct);

    public ContentHttpResult GeoJsonResult(IReadOnlyList<TileHit> hits) =>
        TypedResults.Text(SearchOutput.GeoJson(Shown(hits), h => $"/api/tiles/{h.TileId}/thumbnail.png"), "application/geo+json");

    /// <summary>Search results with relevance (issue 29): see <see cref="SearchOutput.GeoJson(RankedHits, Func{TileHit, string}?)"/>.</summary>
    public ContentHttpResult GeoJsonResult(RankedHits ranked) =>
        TypedResults.Text(SearchOutput.GeoJson(ranked with { Hits = Shown(ranked.Hits) }, h => $"/api/tiles/{h.TileId}/thumbnail.png"), "application/geo+json");

    public IReadOnlyList<TileHit> Shown(IReadOnlyList<TileHit> hits) => hits.Select(h => h with { ScenePath = scenePaths.Name(h.ScenePath) }).ToList();
}
