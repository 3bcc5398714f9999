using System.CommandLine;
using Hangfire;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
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
        var serve = new Command("serve", "Dashboard (/hangfire) and HTTP API (/api/search, /api/tiles/{id}, thumbnails)") { urls, withWorker, model, JobsDir, DbCommands.DbOption };
        CommandAction.Set(serve, async (parse, output, ct) =>
        {
            var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
            await MigrationRunner.ApplyAsync(cs, ct: ct);
            var app = BuildWebApp(cs, parse.GetValue(urls)!, CommonOptions.ResolveModel(parse.GetValue(model)), parse.GetValue(withWorker));
            var jobsDir = parse.GetValue(JobsDir) ?? Path.Combine(RepositoryPaths.TryFindRoot() ?? ".", "jobs");
            if (Directory.Exists(jobsDir))
            {
                var defs = JobDefinition.LoadDirectory(jobsDir);
                RecurringJobDefinitions.Apply(app.Services.GetRequiredService<IRecurringJobManager>(), defs, Path.GetDirectoryName(Path.GetFullPath(jobsDir))!);
                await output.WriteLineAsync($"recurring jobs: {string.Join(", ", defs.Select(d => $"{d.Id} ({d.Cron})"))}");
            }
            await output.WriteLineAsync($"dashboard: {parse.GetValue(urls)}/hangfire   API: {parse.GetValue(urls)}/api/search?q=...");
            await app.RunAsync(ct);
            return 0;
        });

        var what = new Argument<string>("job") { Description = "ingest (paths are scene files) or index (path is an archive folder)" };
        what.AcceptOnlyFromAmong("ingest", "index");
        var paths = new Argument<string[]>("paths") { Arity = ArgumentArity.OneOrMore };
        var pattern = new Option<string>("--pattern") { Description = "File pattern for index", DefaultValueFactory = _ => "*.tif" };
        var model2 = CommonOptions.Model();
        var enqueue = new Command("enqueue", "Queue ingest or archive-index jobs for the workers") { what, paths, pattern, model2, DbCommands.DbOption };
        CommandAction.Set(enqueue, async (parse, output, ct) =>
        {
            var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
            await MigrationRunner.ApplyAsync(cs, ct: ct);
            var modelDir = CommonOptions.ResolveModel(parse.GetValue(model2));
            IndexArchiveJob.ModelIdentityOf(modelDir); // a broken model folder fails here, not in every job
            var client = new BackgroundJobClient(new Hangfire.PostgreSql.PostgreSqlStorage(new Hangfire.PostgreSql.Factories.NpgsqlConnectionFactory(cs, new Hangfire.PostgreSql.PostgreSqlStorageOptions { SchemaName = HangfireSetup.Schema }),
                new Hangfire.PostgreSql.PostgreSqlStorageOptions { SchemaName = HangfireSetup.Schema }));
            foreach (var p in parse.GetValue(paths)!.Select(Path.GetFullPath))
            {
                var id = parse.GetValue(what) == "ingest"
                    ? client.Enqueue<IngestSceneJob>(j => j.RunAsync(p, modelDir, null, CancellationToken.None))
                    : client.Enqueue<IndexArchiveJob>(j => j.RunAsync(p, parse.GetValue(pattern)!, modelDir, null, CancellationToken.None));
                await output.WriteLineAsync($"queued job {id}: {parse.GetValue(what)} {p}");
            }
            return 0;
        });
        return [worker, serve, enqueue];
    }

    /// <summary>The web host: Hangfire dashboard (local requests only by default) and the search API.</summary>
    public static WebApplication BuildWebApp(string connectionString, string urls, string modelDirectory, bool withWorker)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(urls);
        builder.Services.AddRsCapRetJobs(connectionString);
        if (withWorker) builder.Services.AddRsCapRetWorker(JobQueues.All, 1);
        var app = builder.Build();
        app.UseHangfireDashboard("/hangfire");
        app.MapGet("/", () => Results.Redirect("/hangfire"));

        app.MapGet("/api/search", async (HttpRequest req, NpgsqlDataSource ds, ModelCache models, CancellationToken ct) =>
        {
            SearchQuery query;
            try
            {
                var q = req.Query;
                query = SearchQuery.Parse(q["q"], q["k"], q["bbox"], q["near"], q["after"], q["before"], q["exact"] == "true");
            }
            catch (FormatException e) { return Results.BadRequest(new { error = e.Message }); }
            var store = new CatalogStore(ds);
            var hits = await models.WithModelAsync(modelDirectory, async encoder =>
            {
                var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
                return await store.SearchAsync(encoder.EmbedText(query.Text!), query.K, query.Filter with { ModelId = modelId }, ct);
            }, ct);
            return Results.Text(SearchOutput.GeoJson(hits, h => $"/api/tiles/{h.TileId}/thumbnail.png"), "application/geo+json");
        });

        app.MapGet("/api/tiles/{id:long}", async (long id, NpgsqlDataSource ds, CancellationToken ct) =>
        {
            var tile = await TileLookup.FindAsync(ds, id, ct);
            return tile is null ? Results.NotFound(new { error = $"no tile {id}" }) : Results.Text(SearchOutput.GeoJson([tile]), "application/geo+json");
        });

        app.MapGet("/api/tiles/{id:long}/thumbnail.png", async (long id, NpgsqlDataSource ds, CancellationToken ct) =>
        {
            var tile = await TileLookup.FindAsync(ds, id, ct);
            if (tile is null) return Results.NotFound(new { error = $"no tile {id}" });
            try
            {
                using var tiler = SceneTiler.Open(tile.ScenePath, new TilingOptions { TileSize = 256, AllowMissingCrs = true, MaxNodataFraction = 1 });
                var image = tiler.ReadWindow(new PixelWindow(tile.PxX, tile.PxY, tile.PxWidth, tile.PxHeight), 256);
                return Results.File(PngEncoder.Encode(image), "image/png");
            }
            catch (RasterException e) { return Results.Problem(e.Message, statusCode: StatusCodes.Status410Gone); }
        });
        return app;
    }
}

/// <summary>One tile by id, as a search hit (distance 0).</summary>
public static class TileLookup
{
    public static async Task<TileHit?> FindAsync(NpgsqlDataSource ds, long id, CancellationToken ct)
    {
        await using var cmd = ds.CreateCommand("""
            SELECT tile_id, scene_id, scene_path, grid_row, grid_col, px_x, px_y, px_width, px_height, footprint, caption, acquired_at
              FROM tile_catalog WHERE tile_id = $1
            """);
        cmd.Parameters.Add(new() { Value = id });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct)) return null;
        return new TileHit(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetInt32(3), r.GetInt32(4), r.GetInt32(5), r.GetInt32(6),
            r.GetInt32(7), r.GetInt32(8), r.IsDBNull(9) ? null : r.GetFieldValue<NetTopologySuite.Geometries.Polygon>(9),
            r.IsDBNull(10) ? null : r.GetString(10), 0, r.IsDBNull(11) ? null : new DateTimeOffset(r.GetDateTime(11), TimeSpan.Zero));
    }
}
