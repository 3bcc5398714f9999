using System.CommandLine;
using Hangfire;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Jobs;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.Web;

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
        var torchThreads = new Option<int?>("--torch-threads")
        {
            Description = "Threads of each model forward pass (query vectors, uploaded images, chat). Default 1: the host shares its cores with " +
                          "PostgreSQL and the HTTP stack, and one thread per pass served 1.3-1.4x the searches/s of libtorch's default on 2 cores " +
                          "(bench/http-load.sh); with --with-worker, libtorch's default (every core), which ingestion wants",
        }.InRange(1, 256);
        var chatAdapter = CommonOptions.ChatAdapter();
        var serve = new Command("serve", "Search page (/), dashboard (/hangfire) and HTTP API (/api/search, /api/tiles/{id}, thumbnails)")
            { urls, withWorker, model, torchThreads, chatAdapter, JobsDir, DbCommands.DbOption };
        CommandAction.Set(serve, async (parse, output, ct) =>
        {
            var credentials = DashboardCredentials.FromEnvironment();
            // Refuse before touching the database, from what the environment configures (the host's own sources are checked below).
            var environment = new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddEnvironmentVariables().AddEnvironmentVariables("ASPNETCORE_").Build();
            DashboardCredentials.RequireForPublicBindings(DashboardCredentials.ConfiguredUrls(environment, parse.GetValue(urls)!), credentials);
            // A chat adapter that cannot load is refused now, naming its file, not at the first chat turn.
            var adapterFolder = CommonOptions.ResolveChatAdapter(parse.GetValue(chatAdapter)) is { } a ? Path.GetFullPath(a) : null;
            var adapter = adapterFolder is null ? null : RsCapRet.Model.ChatAdapterConfig.LoadFolder(adapterFolder);
            var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
            await MigrationRunner.ApplyAsync(cs, ct: ct);
            // Before any model runs: libtorch gives each thread that first enters it the count set here.
            if ((parse.GetValue(torchThreads) ?? (parse.GetValue(withWorker) ? null : (int?)1)) is { } threads) TorchSharp.torch.set_num_threads(threads);
            // Without --model or RSCAPRET_MODEL the host follows `rscapret models activate` (models/default while none is activated).
            var app = RsCapRetWebHost.Build(cs, parse.GetValue(urls)!, CommonOptions.ResolveModel(parse.GetValue(model)),
                parse.GetValue(withWorker) ? WebHostJobs.DashboardAndWorker : WebHostJobs.Dashboard, credentials,
                followActivatedModel: !CommonOptions.ModelPinned(parse.GetValue(model)), chatAdapter: adapterFolder);
            // Every address Kestrel may bind — --urls, ASPNETCORE_URLS/urls, Kestrel:Endpoints from any configuration
            // source — is checked before start, and the addresses actually bound are checked again after it.
            DashboardCredentials.RequireForPublicBindings(DashboardCredentials.ConfiguredUrls(app.Configuration, parse.GetValue(urls)!), credentials);
            var jobsDir = parse.GetValue(JobsDir) ?? Path.Combine(RepositoryPaths.TryFindRoot() ?? ".", "jobs");
            if (Directory.Exists(jobsDir))
            {
                var defs = JobDefinition.LoadDirectory(jobsDir);
                RecurringJobDefinitions.Apply(app.Services.GetRequiredService<IRecurringJobManager>(), defs, Path.GetDirectoryName(Path.GetFullPath(jobsDir))!);
                JobDefinitionsPage.Show(defs, jobsDir);   // the dashboard says which are manual and how to run them
                var scheduled = defs.Where(d => !d.IsManual).ToList();
                await output.WriteLineAsync(scheduled.Count == 0 ? "recurring jobs: none scheduled"
                    : $"recurring jobs: {string.Join(", ", scheduled.Select(d => $"{d.Id} ({d.Cron})"))}");
                if (defs.Any(d => d.IsManual))
                    await output.WriteLineAsync($"not scheduled (cron \"manual\" in {jobsDir}): {string.Join(", ", defs.Where(d => d.IsManual).Select(d => d.Id))}");
            }
            await app.StartAsync(ct);
            try { DashboardCredentials.RequireForPublicBindings(app.Urls, credentials); }
            catch { await app.StopAsync(CancellationToken.None); throw; }
            if (adapter is not null)
                await output.WriteLineAsync($"chat: the chat adapter v{adapter.Version} ({adapterFolder}) answers for the model it was trained on; search is the model's");
            await output.WriteLineAsync($"search page: {app.Urls.First()}/   dashboard: {app.Urls.First()}/hangfire   API: {app.Urls.First()}/api/search?q=...");
            await app.WaitForShutdownAsync(ct);
            return 0;
        });

        var what = new Argument<string>("job") { Description = "ingest (paths are scene files) or index (path is an archive folder)" };
        what.AcceptOnlyFromAmong("ingest", "index");
        var paths = new Argument<string[]>("paths") { Arity = ArgumentArity.OneOrMore };
        var pattern = PatternOption();
        var model2 = CommonOptions.Model();
        var enqueue = new Command("enqueue", "Queue ingest or archive-index jobs for the workers") { what, paths, pattern, model2, DbCommands.DbOption };
        CommandAction.Set(enqueue, (parse, output, ct) =>
            Enqueue(parse, output, parse.GetValue(what)!, parse.GetValue(paths)!, parse.GetValue(pattern)!, parse.GetValue(model2), ct));
        var archive = new Argument<string>("folder") { Description = "Archive folder to scan, or a local STAC catalog or collection JSON (its items' assets are the scenes)" };
        var pattern2 = PatternOption();
        var model3 = CommonOptions.Model();
        var waitScan = new Option<bool>("--wait")
        {
            Description = "Run the scan and its ingest jobs to the end with a worker in this process, print what was decided per file, exit code 2 if any failed",
        };
        var skipOutOfRange = SceneCommands.SkipOutOfRangeOption();
        var followOutside = new Option<bool>("--follow-links-outside")
        {
            Description = "Follow symbolic links to folders outside the archive folder (each real folder is still read once)",
        };
        var device3 = CommonOptions.Device();
        var indexArchive = new Command("index-archive", "Scan an archive folder or STAC catalog: new or changed files get ingest jobs, files gone leave search, " +
                                                        "renamed files keep their tiles") { archive, pattern2, model3, waitScan, skipOutOfRange, followOutside, device3, DbCommands.DbOption };
        CommandAction.Set(indexArchive, async (parse, output, ct) =>
        {
            var options = new IngestJobOptions(SkipOutOfRange: parse.GetValue(skipOutOfRange), FollowLinksOutside: parse.GetValue(followOutside));
            if (!parse.GetValue(waitScan))
                return await Enqueue(parse, output, "index", [parse.GetValue(archive)!], parse.GetValue(pattern2)!, parse.GetValue(model3), ct, options);
            var root = Path.GetFullPath(parse.GetValue(archive)!);
            if (!Directory.Exists(root) && !StacCatalog.IsCatalogFile(root)) throw new DirectoryNotFoundException($"{parse.GetValue(archive)}: no such folder");
            if (StacCatalog.IsCatalogFile(root)) throw new ArgumentException($"{parse.GetValue(archive)}: --wait scans folders; queue a STAC catalog without --wait");
            var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
            await MigrationRunner.ApplyAsync(cs, ct: ct);
            var modelDir = CommonOptions.ModelFolder(parse.GetValue(model3));
            using var signals = new TerminationSignals(SceneCommands.SignalGrace);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, signals.Token);
            using var models = new ModelCache(parse.GetValue(device3));
            var error = parse.InvocationConfiguration.Error;
            try
            {
                var failed = await DemoJobs.IndexArchiveAsync(cs, modelDir, models, root, parse.GetValue(pattern2)!, options, output, error,
                    ConsoleProgress.Terminal(error), stop.Token);
                return failed == 0 ? 0 : CommandAction.UserError;
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                await error.WriteLineAsync($"error: {signals.CancelReason}");
                return signals.ExitCode;
            }
        });
        return [worker, serve, enqueue, indexArchive];
    }

    private static Option<string> PatternOption()
    {
        var pattern = new Option<string>("--pattern")
        {
            Description = "File names to scan (wildcards, any case; several separated by commas, e.g. \"*.tif,*.jp2\")",
            DefaultValueFactory = _ => Pipeline.FilePattern.Default,
        };
        pattern.Validators.Add(r =>
        {
            if (r.Tokens is [{ Value: var value }] && Pipeline.FilePattern.Problem(value) is { } problem) r.AddError(problem);
        });
        return pattern;
    }

    private static async Task<int> Enqueue(ParseResult parse, TextWriter output, string kind, IEnumerable<string> paths, string pattern, string? model, CancellationToken ct,
        IngestJobOptions? options = null)
    {
        var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
        await MigrationRunner.ApplyAsync(cs, ct: ct);
        var modelDir = CommonOptions.ResolveModel(model);
        RsCapRetTileEncoder.IdentityOf(modelDir); // a broken model folder fails here, not in every job
        var client = new BackgroundJobClient(HangfireSetup.CreateStorage(cs));
        foreach (var p in paths.Select(Path.GetFullPath))
        {
            var id = kind == "ingest"
                ? client.Enqueue<IngestSceneJob>(j => j.RunAsync(p, modelDir, options, null, CancellationToken.None))
                : client.Enqueue<IndexArchiveJob>(j => j.RunAsync(p, pattern, modelDir, options, null, CancellationToken.None));
            await output.WriteLineAsync($"queued job {id}: {kind} {p}");
        }
        return 0;
    }
}
