using System.CommandLine;
using System.Globalization;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Jobs;
using RsCapRet.Queries;
using RsCapRet.Storage;
using RsCapRet.Training.Datasets;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// `rscapret demo`: the README's main job on the embedded defaults — database up to date, the bundled scenes
/// ingested with the default model (idempotent) by Hangfire jobs that a worker in the demo's process runs (so the
/// dashboard shows them), a few text queries answered with captions and footprints.
/// `rscapret demo-mosaic`: builds the demo mosaic from a Karpathy split (used once to make samples/scenes).
/// </summary>
public static class DemoCommands
{
    public static readonly string[] DemoQueries =
        ["an airport with airplanes", "a baseball field", "storage tanks", "a dense residential area", "a river with trees on both sides"];

    public static IEnumerable<Command> Build()
    {
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var scenes = new Option<string?>("--scenes") { Description = "Folder of GeoTIFF scenes (*.tif) to ingest (default: samples/scenes of the checkout)" };
        var demo = new Command("demo", "Ingest the bundled sample scenes with the default model (as Hangfire jobs) and run example searches")
            { model, device, scenes, DbCommands.DbOption };
        CommandAction.Set(demo, async (parse, output, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            // Ctrl-C and SIGTERM stop the demo's worker cleanly: its unfinished jobs are deleted, the running one releases its scene.
            using var signals = new TerminationSignals(SceneCommands.SignalGrace);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, signals.Token);
            try { return await RunDemoAsync(parse, output, error, stop.Token); }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                await error.WriteLineAsync($"error: {signals.CancelReason}");
                return signals.ExitCode;
            }
        });

        async Task<int> RunDemoAsync(ParseResult parse, TextWriter output, TextWriter error, CancellationToken ct)
        {
            var sceneDir = parse.GetValue(scenes) is { } dir ? Path.GetFullPath(dir) : Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes");
            if (!Directory.Exists(sceneDir)) throw new DirectoryNotFoundException($"{sceneDir}: scene folder does not exist");
            var sceneFiles = Directory.EnumerateFiles(sceneDir, "*.tif").Order(StringComparer.Ordinal).ToList();
            if (sceneFiles.Count == 0) throw new ArgumentException($"--scenes: no *.tif scenes in {sceneDir}");
            var cs = RsCapRetDatabase.ResolveConnectionString(parse.GetValue(DbCommands.DbOption));
            await output.WriteLineAsync("== database");
            var applied = await MigrationRunner.ApplyAsync(cs, ct: ct);
            await output.WriteLineAsync(applied.Count == 0 ? "schema up to date" : $"applied migrations {string.Join(", ", applied.Select(v => v.ToString("D4")))}");
            await using var ds = RsCapRetDatabase.CreateDataSource(cs);
            var store = new CatalogStore(ds);

            await output.WriteLineAsync("== model");
            var modelDir = CommonOptions.ModelFolder(parse.GetValue(model));
            // One loaded model serves the demo's worker (its jobs) and the searches below.
            using var models = new ModelCache(parse.GetValue(device));
            var encoder = models.Get(modelDir);
            await output.WriteLineAsync($"{encoder.Identity.Name} v{encoder.Identity.Version} ({modelDir}), input {encoder.InputSize} px");
            var modelConfig = RsCapRet.Model.RsCapRetConfig.Load(modelDir);
            if (modelConfig.Quality is { } quality) await output.WriteLineAsync($"quality: {quality}");

            await output.WriteLineAsync("== ingest");
            // The mosaic is UCM imagery: meet the model at its training resolution. NAIP (5 m) is tiled natively.
            var jobs = sceneFiles.Select(scene => new DemoJobs.SceneJob(scene,
                new IngestJobOptions(Gsd: File.Exists(Path.ChangeExtension(scene, ".index.json")) ? modelConfig.Gsd : null))).ToList();
            var outcomes = await DemoJobs.IngestAsync(cs, modelDir, models, jobs, output, error, ConsoleProgress.Terminal(error), ct);

            var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
            foreach (var q in DemoQueries)
            {
                await output.WriteLineAsync($"== search: \"{q}\" (top 3)");
                var hits = await store.SearchAsync(encoder.EmbedText(q), 3, new SearchFilter(ModelId: modelId), ct);
                await output.WriteAsync(SearchOutput.Table(hits));
            }
            // Each line runs as printed from the repository root (the rest after '#' is a shell comment); the launcher
            // builds the CLI when needed and reads .data/db.env. The similar-tiles line uses a tile from the searches above.
            var examples = await store.SearchAsync(encoder.EmbedText("storage tanks"), 1, new SearchFilter(ModelId: modelId), ct);
            var example = examples.Count > 0 ? examples[0] : null;
            var exampleTile = example?.TileId;
            var sceneText = example?.SceneId.ToString(CultureInfo.InvariantCulture) ?? "ID";
            await output.WriteLineAsync($$"""
                == next (from the repository root)
                search yourself:     ./rscapret search "storage tanks" --bbox -122.5,37.6,-122.3,37.9 --k 5   # add --format geojson for GeoJSON
                map, dashboard, API: ./rscapret serve --urls http://127.0.0.1:5080   # http://127.0.0.1:5080/ (search page with the map), /hangfire (jobs), /api/search?q=... (or ?tile=ID)
                similar tiles:       ./rscapret search --tile {{exampleTile?.ToString(CultureInfo.InvariantCulture) ?? "ID"}}   # tiles that look like a tile from the tables above
                land-use map:        ./rscapret classify {{sceneText}}   # every tile of that scene labelled zero-shot: scene-{{sceneText}}-classes.tif and .geojson here; on the map page /?classes={{sceneText}}
                a dialogue:          ./rscapret chat   # /image PATH, then ask: "is there a river?", "show me storage tanks", "describe the second one"; its [RET] retrieves tiles
                workers:             ./rscapret worker --queues model,default
                """);
            var failed = outcomes.Where(o => !o.Succeeded).ToList();
            if (failed.Count == 0) return 0;
            await error.WriteLineAsync($"error: {failed.Count} of {outcomes.Count} scenes were not ingested ({string.Join(", ", failed.Select(f => $"{Path.GetFileName(f.Path)}: job {f.JobId}"))}); " +
                                       "see the messages above, or the failed jobs at /hangfire");
            return CommandAction.UserError;
        }

        var dataset = new Option<string>("--dataset") { Description = "UCM-Captions folder (dataset.json + images/)", Required = true };
        var split = new Option<string>("--split") { Description = "Split to draw images from", DefaultValueFactory = _ => "val" };
        var size = new Option<int>("--size") { Description = "Cells per side", DefaultValueFactory = _ => 6 };
        var outFile = new Option<string>("--out", "-o") { Description = "GeoTIFF to write (a .index.json is written beside it)", Required = true };
        var classes = new Option<string>("--classes")
        {
            Description = "UCM classes to draw from, round-robin (size*size cells)",
            DefaultValueFactory = _ => "airplane,baseballdiamond,storagetanks,denseresidential,river,harbor,beach,golfcourse,tenniscourt,parkinglot,freeway,agricultural",
        };
        var mosaic = new Command("demo-mosaic", "Build a georeferenced mosaic of UCM-Captions images (illustrative coordinates)") { dataset, split, size, outFile, classes };
        CommandAction.Set(mosaic, async (parse, output, ct) =>
        {
            var (n, path) = (parse.GetValue(size), parse.GetValue(outFile)!);
            var cells = UcmMosaic.Write(parse.GetValue(dataset)!, parse.GetValue(split)!, n,
                parse.GetValue(classes)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries), path);
            await output.WriteLineAsync($"wrote {path} ({n * UcmMosaic.CellSize}x{n * UcmMosaic.CellSize} px, {cells.Count} images)");
            return 0;
        });
        return [demo, mosaic];
    }
}
