using System.CommandLine;
using Hangfire;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using RsCapRet.Core;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret worker` (Hangfire server), `rscapret serve` (dashboard + HTTP API), `rscapret enqueue`.</summary>
public static class HostCommands
{
    private static readonly Option<string?> JobsDir = new("--jobs") { Description = "Folder of recurring job definitions (default: jobs/ of the checkout)" };

    public static IEnumerable<Command> Build()
    {
        var queues = new Option<string>("--queues") { Description = "Comma-separated queues to work on: model (heavy, GPU), default (light)", DefaultValueFactory = _ => "model,default" };
        var workers = new Option<int>("--workers") { Description = "Concurrent jobs in this process", DefaultValueFactory = _ => 1 };
        var worker = new Command("worker", "Run jobs from the shared queues (start one per machine; they share work through the database)")
            { queues, workers, DbCommands.DbOption };
        CommandAction.Set(worker, async (parse, output, ct) =>
        {
            var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
            await MigrationRunner.ApplyAsync(cs, ct: ct);
            var q = parse.GetValue(queues)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var builder = Host.CreateApplicationBuilder();
            builder.Services.AddRsCapRetJobs(cs).AddRsCapRetWorker(q, Math.Max(1, parse.GetValue(workers)));
            using var host = builder.Build();
            await output.WriteLineAsync($"worker on queues {string.Join(",", q)}; Ctrl+C stops it");
            await host.RunAsync(ct);
            return 0;
        });

        var urls = new Option<string>("--urls") { Description = "Listen addresses", DefaultValueFactory = _ => "http://127.0.0.1:5080" };
        var withWorker = new Option<bool>("--with-worker") { Description = "Also run a worker on both queues in this process" };
        var model = CommonOptions.Model();
        var serve = new Command("serve", "Search page (/), dashboard (/hangfire) and HTTP API (/api/search, /api/tiles/{id}, thumbnails)") { urls, withWorker, model, JobsDir, DbCommands.DbOption };
        CommandAction.Set(serve, async (parse, output, ct) =>
        {
            var credentials = DashboardCredentials.FromEnvironment();
            // Refuse before touching the database, from what the environment configures (the host's own sources are checked below).
            var environment = new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddEnvironmentVariables().AddEnvironmentVariables("ASPNETCORE_").Build();
            DashboardCredentials.RequireForPublicBindings(DashboardCredentials.ConfiguredUrls(environment, parse.GetValue(urls)!), credentials);
            var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
            await MigrationRunner.ApplyAsync(cs, ct: ct);
            var app = BuildWebApp(cs, parse.GetValue(urls)!, CommonOptions.ResolveModel(parse.GetValue(model)), parse.GetValue(withWorker), credentials);
            // Every address Kestrel may bind — --urls, ASPNETCORE_URLS/urls, Kestrel:Endpoints from any configuration
            // source — is checked before start, and the addresses actually bound are checked again after it.
            DashboardCredentials.RequireForPublicBindings(DashboardCredentials.ConfiguredUrls(app.Configuration, parse.GetValue(urls)!), credentials);
            var jobsDir = parse.GetValue(JobsDir) ?? Path.Combine(RepositoryPaths.TryFindRoot() ?? ".", "jobs");
            if (Directory.Exists(jobsDir))
            {
                var defs = JobDefinition.LoadDirectory(jobsDir);
                RecurringJobDefinitions.Apply(app.Services.GetRequiredService<IRecurringJobManager>(), defs, Path.GetDirectoryName(Path.GetFullPath(jobsDir))!);
                await output.WriteLineAsync($"recurring jobs: {string.Join(", ", defs.Select(d => $"{d.Id} ({d.Cron})"))}");
            }
            await app.StartAsync(ct);
            try { DashboardCredentials.RequireForPublicBindings(app.Urls, credentials); }
            catch { await app.StopAsync(CancellationToken.None); throw; }
            await output.WriteLineAsync($"search page: {app.Urls.First()}/   dashboard: {app.Urls.First()}/hangfire   API: {app.Urls.First()}/api/search?q=...");
            await app.WaitForShutdownAsync(ct);
            return 0;
        });

        var what = new Argument<string>("job") { Description = "ingest (paths are scene files) or index (path is an archive folder)" };
        what.AcceptOnlyFromAmong("ingest", "index");
        var paths = new Argument<string[]>("paths") { Arity = ArgumentArity.OneOrMore };
        var pattern = new Option<string>("--pattern") { Description = "File pattern for index", DefaultValueFactory = _ => "*.tif" };
        var model2 = CommonOptions.Model();
        var enqueue = new Command("enqueue", "Queue ingest or archive-index jobs for the workers") { what, paths, pattern, model2, DbCommands.DbOption };
        CommandAction.Set(enqueue, (parse, output, ct) =>
            Enqueue(parse, output, parse.GetValue(what)!, parse.GetValue(paths)!, parse.GetValue(pattern)!, parse.GetValue(model2), ct));
        var archive = new Argument<string>("folder") { Description = "Archive folder to scan, or a local STAC catalog or collection JSON (its items' assets are the scenes)" };
        var pattern2 = new Option<string>("--pattern") { Description = "File pattern", DefaultValueFactory = _ => "*.tif" };
        var model3 = CommonOptions.Model();
        var indexArchive = new Command("index-archive", "Queue a scan of an archive folder or STAC catalog: new or changed scenes get ingest jobs") { archive, pattern2, model3, DbCommands.DbOption };
        CommandAction.Set(indexArchive, (parse, output, ct) =>
            Enqueue(parse, output, "index", [parse.GetValue(archive)!], parse.GetValue(pattern2)!, parse.GetValue(model3), ct));
        return [worker, serve, enqueue, indexArchive];
    }

    private static async Task<int> Enqueue(ParseResult parse, TextWriter output, string kind, IEnumerable<string> paths, string pattern, string? model, CancellationToken ct)
    {
        var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
        await MigrationRunner.ApplyAsync(cs, ct: ct);
        var modelDir = CommonOptions.ResolveModel(model);
        RsCapRetTileEncoder.IdentityOf(modelDir); // a broken model folder fails here, not in every job
        var client = new BackgroundJobClient(HangfireSetup.CreateStorage(cs));
        foreach (var p in paths.Select(Path.GetFullPath))
        {
            var id = kind == "ingest"
                ? client.Enqueue<IngestSceneJob>(j => j.RunAsync(p, modelDir, null, null, CancellationToken.None))
                : client.Enqueue<IndexArchiveJob>(j => j.RunAsync(p, pattern, modelDir, null, CancellationToken.None));
            await output.WriteLineAsync($"queued job {id}: {kind} {p}");
        }
        return 0;
    }

    private const long MaxUploadBytes = 20_000_000;

    /// <summary>Pixels an uploaded image may declare before it is decoded (RSCAPRET_MAX_UPLOAD_PIXELS, default 50 MP).</summary>
    public static long MaxUploadPixels =>
        long.TryParse(Environment.GetEnvironmentVariable("RSCAPRET_MAX_UPLOAD_PIXELS"), out var p) && p > 0 ? p : 50_000_000;

    /// <summary>
    /// The web host: the search page, Hangfire dashboard (local requests only by default) and the search API.
    /// Scene paths in its answers are shown by <paramref name="scenePaths"/> (default: from RSCAPRET_ARCHIVE_ROOT).
    /// </summary>
    public static WebApplication BuildWebApp(string connectionString, string urls, string modelDirectory, bool withWorker,
        DashboardCredentials? credentials = null, ScenePathDisplay? scenePaths = null, TileDiskCache? tileCache = null)
    {
        scenePaths ??= ScenePathDisplay.FromEnvironment();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(JsonErrors.ConfigureKestrel);   // over-long URLs reach UseJsonErrors
        builder.Services.AddRsCapRetJobs(connectionString);
        // Hangfire's dashboard validates an anti-forgery token on its POST actions when this service is registered.
        builder.Services.AddAntiforgery();
        if (withWorker) builder.Services.AddRsCapRetWorker(JobQueues.All, 1);
        var app = builder.Build();
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

        // Text (q=...) or image-to-image from a stored tile (tile=ID); same filters either way.
        app.MapGet("/api/search", async (HttpRequest req, NpgsqlDataSource ds, ModelCache models, CancellationToken ct) =>
        {
            SearchQuery query;
            long? tile = null;
            try
            {
                var q = req.Query;
                if (!string.IsNullOrEmpty(q["tile"]) && !string.IsNullOrEmpty(q["q"])) throw new FormatException("give either q (text) or tile (a tile id), not both.");
                if (!string.IsNullOrEmpty(q["tile"])) tile = SearchQuery.ParseTileId(q["tile"]);
                query = SearchQuery.Parse(q["q"], q["k"], q["bbox"], q["near"], q["after"], q["before"], q["exact"] == "true", textRequired: tile is null);
            }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            var store = new CatalogStore(ds);
            IReadOnlyList<TileHit> hits;
            if (tile is { } id)
            {
                if (await store.SearchByTileAsync(id, query.K, query.Filter, ct) is not { } found) return Results.NotFound(new { error = $"no tile {id}" });
                hits = found;
            }
            else hits = await SearchWithModelAsync(store, models, encoder => encoder.EmbedText(query.Text!), query, ct);
            return GeoJsonResult(hits);
        });

        // Image-to-image with an uploaded image (the request body: PNG, JPEG, TIFF...), filters in the query string.
        app.MapPost("/api/search/image", async (HttpRequest req, NpgsqlDataSource ds, ModelCache models, CancellationToken ct) =>
        {
            SearchQuery query;
            try
            {
                var q = req.Query;
                query = SearchQuery.Parse(null, q["k"], q["bbox"], q["near"], q["after"], q["before"], q["exact"] == "true", textRequired: false);
            }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            var tooLarge = Results.Json(new { error = $"the image is larger than {MaxUploadBytes / 1_000_000} MB" }, statusCode: StatusCodes.Status413PayloadTooLarge);
            if (req.ContentLength is > MaxUploadBytes) return tooLarge;
            // The upload stays in memory and is opened from there by the image drivers only (RasterImage.ReadUploadedRgb):
            // never a path on disk, never a format that can name other files or URLs.
            using var body = new MemoryStream();
            var buffer = new byte[81920];
            int n;
            while ((n = await req.Body.ReadAsync(buffer, ct)) > 0)
            {
                if (body.Length + n > MaxUploadBytes) return tooLarge;
                body.Write(buffer, 0, n);
            }
            if (body.Length == 0) return Results.BadRequest(new { error = "the request body is empty: send the image as the body" });
            RgbImage image;
            try { image = RasterImage.ReadUploadedRgb(body.GetBuffer().AsSpan(0, (int)body.Length), MaxUploadPixels, maxSide: 4096); }
            catch (RasterException e) when (e.Message.Contains("more than the limit"))
            {
                return Results.Json(new { error = "the uploaded image " + e.Message.Replace("upload: ", "") + " (RSCAPRET_MAX_UPLOAD_PIXELS)" }, statusCode: StatusCodes.Status413PayloadTooLarge);
            }
            catch (RasterException e) { return Results.BadRequest(new { error = "the uploaded image cannot be read: " + e.Message }); }
            return GeoJsonResult(await SearchWithModelAsync(new CatalogStore(ds), models, encoder => encoder.EmbedImage(image), query, ct));
        });

        app.MapGet("/api/tiles/{id:long}", async (long id, NpgsqlDataSource ds, CancellationToken ct) =>
        {
            var tile = await new CatalogStore(ds).GetTileAsync(id, ct);
            return tile is null ? Results.NotFound(new { error = $"no tile {id}" }) : Results.Text(SearchOutput.GeoJson(Shown([tile])), "application/geo+json");
        });

        // What changed between two acquisitions: before/after are scene ids or date ranges (with bbox or area).
        app.MapGet("/api/changes", async (HttpRequest req, NpgsqlDataSource ds, ModelCache models, CancellationToken ct) =>
        {
            ChangeQuery query;
            var q = req.Query;
            try { query = ChangeQuery.Parse(q["before"], q["after"], q["area"], q["bbox"], q["toward"], q["k"], q["min_iou"], scenePathsAllowed: false); }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            var store = new CatalogStore(ds);
            ChangeResult result;
            try
            {
                result = await ChangeRunner.RunAsync(store, query, text => models.WithModelAsync(modelDirectory,
                    async encoder => (await store.RegisterModelAsync(encoder.Identity, ct), encoder.EmbedText(text)), ct), ct);
            }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.RaiseException)
            {
                return Results.BadRequest(new { error = e.MessageText.Replace("rscapret_changes: ", "") });
            }
            return Results.Text(ChangeOutput.GeoJson(result.Changes, result.Notes,
                tile => $"/api/tiles/{tile}/thumbnail.png"), "application/geo+json");
        });

        // Imagery: Web Mercator tiles rendered from the ingested scenes (the map page's base layer), cached on disk.
        var mapTiles = new MapTileService(tileCache ?? TileDiskCache.FromEnvironment());
        app.Lifetime.ApplicationStopped.Register(mapTiles.Dispose);
        app.MapGet("/tiles/{z}/{x}/{y}.png", async (string z, string x, string y, HttpRequest req, HttpResponse res, NpgsqlDataSource ds,
            ILoggerFactory logs, CancellationToken ct) =>
        {
            MapTileAddress tile;
            long? scene = null;
            try
            {
                static int Int(string s, string name) => int.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v)
                    ? v : throw new FormatException($"{name} must be a whole number, got '{s}'");
                tile = MapTileAddress.Checked(Int(z, "zoom"), Int(x, "x"), Int(y, "y"));
                if (req.Query["scene"] is { Count: > 0 } s)
                    scene = long.TryParse(s[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) && id > 0
                        ? id : throw new FormatException($"scene must be a positive scene id, got '{s[0]}'");
            }
            catch (Exception e) when (e is FormatException or ArgumentOutOfRangeException)
            {
                return Results.BadRequest(new { error = CommandAction.OneLine(e) });
            }
            var result = await mapTiles.RenderAsync(new CatalogStore(ds), tile, scene, ct);
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

        // Similarity heat map: every tile of the view (bbox) or of a scene scored against a text or a stored tile.
        app.MapGet("/api/heatmap", async (HttpRequest req, NpgsqlDataSource ds, ModelCache models, CancellationToken ct) =>
        {
            HeatmapQuery query;
            var q = req.Query;
            try { query = HeatmapQuery.Parse(q["q"], q["tile"], q["bbox"], q["scene"], q["max"]); }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            var store = new CatalogStore(ds);
            if (query.Scene is { } sceneId && await store.GetSceneAsync(sceneId, ct) is null) return Results.NotFound(new { error = $"no scene {sceneId}" });
            int modelId;
            float[] vector;
            if (query.Tile is { } tileId)
            {
                if (await store.GetTileVectorAsync(tileId, ct) is not { } stored) return Results.NotFound(new { error = $"no tile {tileId}" });
                (modelId, vector) = stored;
            }
            else
                (modelId, vector) = await models.WithModelAsync(modelDirectory,
                    async encoder => (await store.RegisterModelAsync(encoder.Identity, ct), encoder.EmbedText(query.Text!)), ct);
            var result = await store.HeatmapAsync(vector, query.Area, query.Scene, modelId, query.MaxTiles, ct);
            if (result.MoreThan is { } n)
                return Results.BadRequest(new { error = $"the area holds more than {n} tiles: zoom in, ask for one scene, or raise max (at most {HeatmapQuery.Limit})" });
            return Results.Text(HeatmapQuery.GeoJson(result, query.Text ?? $"tile {query.Tile}"), "application/geo+json");
        });

        // Zero-shot land-use classes of a scene: its stored vectors against the [RET] vectors of one prompt per label.
        app.MapGet("/api/scenes/{id:long}/classes", async (long id, HttpRequest req, NpgsqlDataSource ds, ModelCache models, CancellationToken ct) =>
        {
            LandUseQuery query;
            var q = req.Query;
            try { query = LandUseQuery.Parse(id.ToString(System.Globalization.CultureInfo.InvariantCulture), q["labels"].FirstOrDefault(), null, q["template"].FirstOrDefault()); }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            var store = new CatalogStore(ds);
            try
            {
                var map = await LandUseClassifier.RunAsync(store, query, prompts => models.WithModelAsync(modelDirectory,
                    async encoder => (await store.RegisterModelAsync(encoder.Identity, ct), (IReadOnlyList<float[]>)prompts.Select(encoder.EmbedText).ToList()), ct), ct);
                return Results.Text(map.GeoJson(), "application/geo+json");
            }
            catch (SceneNotFoundException e) { return Results.NotFound(new { error = e.Message }); }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
        });

        var sceneFiles = new RegisteredSceneFiles();
        app.MapGet("/api/tiles/{id:long}/thumbnail.png", async (long id, NpgsqlDataSource ds, CancellationToken ct) =>
        {
            var store = new CatalogStore(ds);
            var tile = await store.GetTileAsync(id, ct);
            if (tile is null) return Results.NotFound(new { error = $"no tile {id}" });
            // Only the registered scene, unchanged since ingestion, is read on a request's behalf.
            var scene = await store.GetSceneFileAsync(tile.SceneId, ct);
            if ((scene is null ? "the scene is no longer registered" : await sceneFiles.ProblemAsync(scene, ct)) is { } problem)
                return Results.Json(new { error = $"{scenePaths.Name(tile.ScenePath)}: {problem}" }, statusCode: StatusCodes.Status410Gone);
            try
            {
                using var tiler = SceneTiler.Open(tile.ScenePath, new TilingOptions { TileSize = 256, AllowMissingCrs = true, MaxNodataFraction = 1 });
                var image = tiler.ReadWindow(new PixelWindow(tile.PxX, tile.PxY, tile.PxWidth, tile.PxHeight), 256);
                return Results.File(PngEncoder.Encode(image), "image/png");
            }
            catch (RasterException e) { return Results.Json(new { error = scenePaths.Redact(e.Message, tile.ScenePath) }, statusCode: StatusCodes.Status410Gone); }
        });
        return app;

        // The query vector comes from the serving model (text or image), and only that model's tiles are searched.
        Task<IReadOnlyList<TileHit>> SearchWithModelAsync(CatalogStore store, ModelCache models, Func<RsCapRetTileEncoder, float[]> vectorOf,
            SearchQuery query, CancellationToken ct) =>
            models.WithModelAsync(modelDirectory, async encoder =>
            {
                var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
                return await store.SearchAsync(vectorOf(encoder), query.K, query.Filter with { ModelId = modelId }, ct);
            }, ct);

        IResult GeoJsonResult(IReadOnlyList<TileHit> hits) =>
            Results.Text(SearchOutput.GeoJson(Shown(hits), h => $"/api/tiles/{h.TileId}/thumbnail.png"), "application/geo+json");

        IReadOnlyList<TileHit> Shown(IReadOnlyList<TileHit> hits) => hits.Select(h => h with { ScenePath = scenePaths.Name(h.ScenePath) }).ToList();
    }
}

/// <summary>Basic-auth credentials for a host reachable from other machines (RSCAPRET_DASHBOARD_USER/_PASSWORD).</summary>
public sealed record DashboardCredentials(string User, string Password)
{
    public const string UserVariable = "RSCAPRET_DASHBOARD_USER";
    public const string PasswordVariable = "RSCAPRET_DASHBOARD_PASSWORD";

    public static DashboardCredentials? FromEnvironment() =>
        Environment.GetEnvironmentVariable(UserVariable) is { Length: > 0 } u && Environment.GetEnvironmentVariable(PasswordVariable) is { Length: > 0 } p
            ? new DashboardCredentials(u, p) : null;

    public bool Accepts(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return false;
        try
        {
            var pair = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(authorization[6..].Trim()));
            var expected = System.Text.Encoding.UTF8.GetBytes($"{User}:{Password}");
            return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(pair), expected);
        }
        catch (FormatException) { return false; }
    }

    /// <summary>The URLs Kestrel may bind: --urls, the "urls" setting (ASPNETCORE_URLS) and every Kestrel:Endpoints:*:Url.</summary>
    public static IReadOnlyList<string> ConfiguredUrls(Microsoft.Extensions.Configuration.IConfiguration config, string cliUrls) =>
        new[] { cliUrls, config["urls"] ?? "" }
            .Concat(config.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"] ?? ""))
            .SelectMany(u => u.Split(';', ',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();

    /// <summary>Refuses addresses reachable from other machines unless basic-auth credentials are configured.</summary>
    public static void RequireForPublicBindings(IEnumerable<string> urls, DashboardCredentials? credentials)
    {
        var publicUrls = NonLoopback(string.Join(";", urls));
        if (publicUrls.Count > 0 && credentials is null)
            throw new ArgumentException($"--urls: {string.Join(",", publicUrls)} is reachable from other machines: set {UserVariable} and " +
                                        $"{PasswordVariable} (basic authentication for the dashboard and the API), or bind to 127.0.0.1");
    }

    /// <summary>The listen URLs whose host is not a loopback address.</summary>
    public static IReadOnlyList<string> NonLoopback(string urls) =>
        urls.Split(';', ',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(u =>
        {
            var host = Uri.TryCreate(u.Replace("://*", "://0.0.0.0").Replace("://+", "://0.0.0.0"), UriKind.Absolute, out var uri) ? uri.Host : u;
            return !(host == "localhost" || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip)));
        }).ToList();
}
