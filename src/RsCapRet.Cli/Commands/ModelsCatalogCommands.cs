using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hangfire;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;
using RsCapRet.Storage;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// Model upgrades: `rscapret models list|activate` (the catalogue's models, their share of the archive, which one
/// searches use) and `rscapret reindex --model DIR` (a version with a new model for every current archive path, while
/// searches keep using the serving model until it is activated).
/// </summary>
public static class ModelsCatalogCommands
{
    public static Command Models()
    {
        var models = new Command("models", "The catalogue's models, their share of the archive, and which one searches use (list, activate)");
        models.Subcommands.Add(List());
        models.Subcommands.Add(Activate());
        return models;
    }

    /// <summary>name@version, how models are named on the command line.</summary>
    public static string NameOf(ModelShare m) => $"{m.Name}@{m.Version}";

    private static double Share(ModelShare m) => m.TotalPaths == 0 ? 0 : (double)m.Paths / m.TotalPaths;

    private static bool FolderHere(string? directory) =>
        directory is not null && File.Exists(Path.Combine(directory, RsCapRet.Model.RsCapRetConfig.FileName));

    private static Command List()
    {
        var format = CatalogConnection.FormatOption();
        var list = new Command("list", "Each model: id, name@version, folder, whether searches use it, and its share of the archive's current paths")
            { format, DbCommands.DbOption };
        CommandAction.Set(list, async (parse, output, ct) =>
        {
            var owned = new List<IAsyncDisposable>();
            try
            {
                var store = await CatalogConnection.OpenAsync(parse, owned, ct);
                var shares = await store.ModelSharesAsync(ct);
                if (parse.GetValue(format) == "json")
                {
                    await output.WriteLineAsync(new JsonArray(shares.Select(m => (JsonNode?)new JsonObject
                    {
                        ["id"] = m.Id, ["name"] = m.Name, ["version"] = m.Version, ["folder"] = m.Directory, ["folder_here"] = FolderHere(m.Directory),
                        ["active"] = m.Active, ["paths"] = m.Paths, ["total_paths"] = m.TotalPaths, ["share"] = Math.Round(Share(m), 6),
                        ["pending"] = m.Pending, ["failed"] = m.Failed, ["tiles"] = m.Tiles,
                    }).ToArray()).ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                    return 0;
                }
                await output.WriteAsync(Table(shares));
                return 0;
            }
            finally { foreach (var o in owned) await o.DisposeAsync(); }
        });
        return list;
    }

    public static string Table(IReadOnlyList<ModelShare> shares)
    {
        if (shares.Count == 0) return "no models in the catalogue yet (ingest or index-archive registers one)\n";
        var sb = new StringBuilder();
        var width = Math.Max(13, shares.Max(m => NameOf(m).Length));
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"id",4}  {"model".PadRight(width)}  {"active",-6}  {"paths",11}  {"share",7}  {"pending",7}  {"failed",6}  {"tiles",8}  folder");
        foreach (var m in shares)
        {
            var paths = $"{m.Paths} of {m.TotalPaths}";
            var folder = m.Directory is null ? "(not recorded)" : m.Directory + (FolderHere(m.Directory) ? "" : " (missing here)");
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{m.Id,4}  {NameOf(m).PadRight(width)}  {(m.Active ? "yes" : ""),-6}  {paths,11}  {Share(m),7:P1}  {m.Pending,7}  {m.Failed,6}  {m.Tiles,8}  {folder}");
        }
        sb.AppendLine(shares.FirstOrDefault(m => m.Active) is { } active
            ? $"searches (API, CLI, map) use {NameOf(active)}, except processes given --model or RSCAPRET_MODEL"
            : "no model activated: each process searches with its --model or RSCAPRET_MODEL, else models/default");
        return sb.ToString();
    }

    /// <summary>
    /// The model a user names: its id, name@version, or name when only one model has it. Unknown or ambiguous names
    /// are an error listing the choices.
    /// </summary>
    public static ModelShare Resolve(IReadOnlyList<ModelShare> shares, string name)
    {
        string Choices(IEnumerable<ModelShare> ms) => string.Join(", ", ms.Select(m => $"{NameOf(m)} (id {m.Id})"));
        name = name.Trim();
        if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && shares.FirstOrDefault(m => m.Id == id) is { } byId)
            return byId;
        var at = name.LastIndexOf('@');
        var matches = at > 0
            ? shares.Where(m => m.Name == name[..at] && m.Version == name[(at + 1)..]).ToList()
            : shares.Where(m => m.Name == name).ToList();
        if (matches.Count == 1) return matches[0];
        if (matches.Count > 1)
            throw new ArgumentException($"'{name}' names {matches.Count} models: {Choices(matches)}; name one " +
                                        (at > 0 ? "by its id" : "as NAME@VERSION, or by its id"));
        throw new ArgumentException(shares.Count == 0
            ? $"no model '{name}' in the catalogue: it has no models yet"
            : $"no model '{name}' in the catalogue; its models are: {Choices(shares)}");
    }

    private static Command Activate()
    {
        var name = new Argument<string>("model") { Description = "The model: its id, its name, or NAME@VERSION when several versions share the name (see `rscapret models list`)" };
        var activate = new Command("activate", "Make a model the one searches use everywhere: the API and map of running servers (within seconds), and the CLI; " +
                                               "processes given --model or RSCAPRET_MODEL keep theirs")
            { name, DbCommands.DbOption };
        CommandAction.Set(activate, async (parse, output, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var owned = new List<IAsyncDisposable>();
            try
            {
                var store = await CatalogConnection.OpenAsync(parse, owned, ct);
                var model = Resolve(await store.ModelSharesAsync(ct), parse.GetValue(name)!);
                if (model.Directory is null)
                    throw new ArgumentException($"{NameOf(model)} (id {model.Id}) has no recorded model folder (nothing was ingested with it), so other processes " +
                                                "could not load it; reindex with it first: rscapret reindex --model DIR");
                if (model.Active)
                {
                    await output.WriteLineAsync($"{NameOf(model)} (id {model.Id}) is active already");
                    return 0;
                }
                if (!FolderHere(model.Directory))
                    await error.WriteLineAsync($"warning: {model.Directory}: the model's folder is not on this machine; processes here cannot search until it is");
                if (model.Paths < model.TotalPaths)
                    await error.WriteLineAsync($"warning: {NameOf(model)} has complete versions of {model.Paths} of {model.TotalPaths} current archive paths; " +
                                               $"the other {model.TotalPaths - model.Paths} drop out of search until `rscapret reindex --model {model.Directory}` covers them");
                if (!await store.ActivateModelAsync(model.Id, ct)) throw new ArgumentException($"model {model.Id} is no longer in the catalogue");
                await output.WriteLineAsync($"activated {NameOf(model)} (id {model.Id}, {model.Directory}): searches of the API, CLI and map use it now " +
                                            "(running servers follow within seconds; processes given --model or RSCAPRET_MODEL keep theirs)");
                return 0;
            }
            finally { foreach (var o in owned) await o.DisposeAsync(); }
        });
        return activate;
    }

    /// <summary>A current archive path without a complete version of the new model, and the options of the version it shows.</summary>
    public sealed record ReindexPath(string Path, IngestJobOptions Options);

    /// <summary>
    /// The current archive paths (whatever model shows them) with no complete version of <paramref name="modelId"/>,
    /// each with the plan options of its current version (the active model's when it has one, else the newest).
    /// </summary>
    public static async Task<(IReadOnlyList<ReindexPath> Todo, int Total)> PathsToReindexAsync(CatalogStore store, int modelId, int? activeId, CancellationToken ct)
    {
        var rows = new List<SceneListing>();
        const int page = 10_000;
        for (var offset = 0; ; offset += page)
        {
            var (batch, total) = await store.ListScenesAsync(new SceneListQuery { Limit = page, Offset = offset }, ct);
            rows.AddRange(batch);
            if (batch.Count < page || offset + batch.Count >= total) break;
        }
        var todo = new List<ReindexPath>();
        var paths = rows.GroupBy(r => r.Path, StringComparer.Ordinal).ToList();
        foreach (var path in paths)
        {
            if (path.Any(r => r.ModelId == modelId && r.Version is not null)) continue;   // shows a complete version of the model
            var source = path.Where(r => r.Version is not null && r.Plan is not null)
                             .OrderByDescending(r => r.ModelId == activeId).ThenByDescending(r => r.UpdatedAt).FirstOrDefault()
                         ?? path.Where(r => r.Plan is not null).OrderByDescending(r => r.UpdatedAt).FirstOrDefault();
            var options = IngestPlan.FromJson(source?.Plan) is { } plan ? IngestJobOptions.FromPlan(plan) : new IngestJobOptions();
            todo.Add(new ReindexPath(path.Key, options));
        }
        return (todo, paths.Count);
    }

    public static Command Reindex()
    {
        var model = new Option<string>("--model") { Description = "The new model's folder (rscapret.json + heads + tokenizer)", Required = true };
        var activateWhenDone = new Option<bool>("--activate-when-done")
        {
            Description = "Activate the model once every current path has a complete version with it (with --wait: at the end, if none failed; " +
                          "without: a job checks every 30 s and activates it then)",
        };
        var wait = new Option<bool>("--wait") { Description = "Run the ingest jobs with a worker in this process and print each result (default: queue them for `rscapret worker`)" };
        var device = CommonOptions.Device();
        var reindex = new Command("reindex", "Re-encode the archive with a new model: an ingest job for every current path without a complete version of it " +
                                             "(same plan as its current version); searches keep using the serving model until the new one is activated")
            { model, activateWhenDone, wait, device, DbCommands.DbOption };
        CommandAction.Set(reindex, async (parse, output, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            using var signals = new TerminationSignals(SceneCommands.SignalGrace);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, signals.Token);
            try { return await ReindexAsync(parse, output, error, stop.Token); }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                await error.WriteLineAsync($"error: {signals.CancelReason}");
                return signals.ExitCode;
            }
        });
        return reindex;

        async Task<int> ReindexAsync(ParseResult parse, TextWriter output, TextWriter error, CancellationToken ct)
        {
            var dir = CommonOptions.ModelFolder(parse.GetValue(model));
            var identity = RsCapRetTileEncoder.IdentityOf(dir);   // a broken model folder fails here, not in every job
            var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
            await MigrationRunner.ApplyAsync(cs, ct: ct);
            await using var ds = await RsCapRetDatabase.OpenAsync(cs, ct: ct);
            var store = new CatalogStore(ds);
            var modelId = await store.RegisterModelAsync(identity, ct);
            await store.RecordModelDirectoryAsync(modelId, dir, ct);
            var name = $"{identity.Name}@{identity.Version}";
            var active = await store.ActiveModelAsync(ct);
            var (todo, total) = await PathsToReindexAsync(store, modelId, active?.Id, ct);
            var serving = active is null ? "each process's --model, RSCAPRET_MODEL or models/default"
                : active.Value.Id == modelId ? name
                : (await store.ModelSharesAsync(ct)).FirstOrDefault(m => m.Id == active.Value.Id) is { } current ? $"{NameOf(current)} (activated)" : $"model {active.Value.Id} (activated)";
            await output.WriteLineAsync($"reindex with {name} (id {modelId}, {dir}): {todo.Count} of {total} current archive paths need a version with it; " +
                                        $"searches keep using {serving} until it is activated");
            var activate = parse.GetValue(activateWhenDone);
            if (todo.Count == 0)
                return activate ? await ActivateIfCompleteAsync(store, modelId, name, output, error, ct) : 0;

            if (!parse.GetValue(wait))
            {
                var client = new BackgroundJobClient(HangfireSetup.CreateStorage(cs));
                var ids = todo.Select(t => client.Enqueue<IngestSceneJob>(j => j.RunAsync(t.Path, dir, t.Options, null, CancellationToken.None))).ToList();
                await output.WriteLineAsync($"queued {Counted.Of(ids.Count, "ingest job")} ({Span(ids)}) for `rscapret worker` (progress: /hangfire of `rscapret serve`)");
                if (activate)
                {
                    var job = client.Enqueue<ActivateWhenReindexedJob>(j => j.RunAsync(modelId, null, CancellationToken.None));
                    await output.WriteLineAsync($"queued job {job}: activates {name} once every current path has a complete version with it " +
                                                $"(checks every {ActivateWhenReindexedJob.CheckEvery.TotalSeconds:F0} s)");
                }
                else await output.WriteLineAsync($"when they are done: rscapret models activate {name}");
                return 0;
            }

            using var models = new ModelCache(parse.GetValue(device));
            var outcomes = await DemoJobs.IngestAsync(cs, dir, models, todo.Select(t => new DemoJobs.SceneJob(t.Path, t.Options)).ToList(),
                output, error, ConsoleProgress.Terminal(error), ct);
            var failed = outcomes.Where(o => !o.Succeeded || o.Report?.Result.Outcome is IngestOutcome.Failed or IngestOutcome.SkippedOutOfRange).ToList();
            await output.WriteLineAsync($"reindexed {outcomes.Count - failed.Count} of {outcomes.Count} paths with {name}" +
                                        (failed.Count > 0 ? $"; {failed.Count} not: {string.Join(", ", failed.Select(f => Path.GetFileName(f.Path)))}" : ""));
            if (failed.Count > 0)
            {
                if (activate) await error.WriteLineAsync($"error: {name} was not activated: {failed.Count} paths have no version with it (rscapret scenes retry, then reindex again)");
                return CommandAction.UserError;
            }
            if (!activate)
            {
                await output.WriteLineAsync($"searches still use the serving model; switch them with: rscapret models activate {name}");
                return 0;
            }
            return await ActivateIfCompleteAsync(store, modelId, name, output, error, ct);
        }
    }

    private static string Span(List<string> ids) => ids.Count <= 3 ? string.Join(", ", ids) : $"{ids[0]} … {ids[^1]}";

    private static async Task<int> ActivateIfCompleteAsync(CatalogStore store, int modelId, string name, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var share = (await store.ModelSharesAsync(ct)).First(m => m.Id == modelId);
        if (share.Paths < share.TotalPaths)
        {
            // New paths came in meanwhile (a scan), or some failed with the new model: not every path could be searched.
            await error.WriteLineAsync($"error: {name} was not activated: it has complete versions of {share.Paths} of {share.TotalPaths} current paths; " +
                                       "run reindex again");
            return CommandAction.UserError;
        }
        if (!share.Active) await store.ActivateModelAsync(modelId, ct);
        await output.WriteLineAsync($"activated {name} (id {modelId}): every current path ({share.TotalPaths}) has a complete version with it; searches use it now");
        return 0;
    }
}
