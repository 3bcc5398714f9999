using System.Text.Json;
using System.Text.RegularExpressions;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Jobs;
using RsCapRet.Storage;
using YamlDotNet.RepresentationModel;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// The Docker deployment (Dockerfile, docker-compose.yml, docker/, its walkthrough docs/docker.md) checked without a Docker
/// engine. The container's process is `dotnet rscapret.dll ARGS`, and `CliApp.RunAsync` first parses ARGS and refuses
/// what <see cref="UsageErrors.Describe"/> finds wrong (exit 2): the same two calls here, on the arguments every service,
/// the Dockerfile and docs/docker.md's walkthrough give it, say whether the container would start its command. What the
/// commands name must exist too: environment variables the product reads, and paths the image (Dockerfile COPY lines,
/// minus .dockerignore) or the service's volumes provide.
/// </summary>
public sealed class DeploymentFilesTests
{
    private static readonly string Root = RepositoryPaths.FindRoot();

    /// <summary>What the CLI's own Main does with a command line before running it: null means it runs the command.</summary>
    private static string? Verdict(IReadOnlyList<string> args) => UsageErrors.Describe(CliApp.BuildRoot().Parse(args.ToArray()));

    [Fact]
    public void EveryComposeCommandParsesWithTheRealCli()
    {
        var (compose, image) = (Compose.Load(Root), DockerImage.Load(Root));
        var problems = new List<string>();
        foreach (var service in compose.AppServices(problems))
        {
            var args = ContainerArguments(image, service, problems);
            if (args is null) continue;
            var parse = CliApp.BuildRoot().Parse(args.ToArray());
            if (UsageErrors.Describe(parse) is { } error)
                problems.Add($"service {service.Name}: `rscapret {string.Join(' ', args)}` exits 2 at once: {error}");
            // A worker on a queue no job is put on would start and idle forever; the parser takes any name.
            else if (parse.CommandResult.Command.Name == "worker" &&
                     parse.GetValue<string>("--queues")!.Split(',', StringSplitOptions.TrimEntries).FirstOrDefault(q => !JobQueues.All.Contains(q)) is { } queue)
                problems.Add($"service {service.Name}: worker --queues names '{queue}', not a queue jobs go to ({string.Join(", ", JobQueues.All)})");
        }
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Fact]
    public void DockerfileEntrypointRunsTheCliAndItsCmdParses()
    {
        var image = DockerImage.Load(Root);
        var problems = new List<string>();
        var cli = CliOfEntrypoint(image, problems);
        if (cli is not null && Verdict(image.Cmd ?? []) is { } error)
            problems.Add($"Dockerfile: `docker run` without a command runs `rscapret {string.Join(' ', image.Cmd ?? [])}`, which exits 2: {error}");
        // The build's own smoke runs of the CLI (RUN dotnet rscapret.dll ...) parse too.
        foreach (var run in image.CliRuns)
            if (Verdict(run) is { } runError) problems.Add($"Dockerfile: RUN dotnet {cli} {string.Join(' ', run)}: {runError}");
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Fact]
    public void EnvironmentNamesAreOnesTheProductReads()
    {
        var (compose, image) = (Compose.Load(Root), DockerImage.Load(Root));
        var read = ProductEnvironmentVariables();
        Assert.Contains("RSCAPRET_DB", read);   // the scan below finds what it should
        var problems = new List<string>();
        foreach (var name in image.Environment.Keys.Where(n => !read.Contains(n)))
            problems.Add($"Dockerfile: ENV {name} is not read by anything under src/");
        foreach (var service in compose.AppServices(problems))
            foreach (var name in service.Environment.Keys.Where(n => !read.Contains(n)))
                problems.Add($"service {service.Name}: environment {name} is not read by anything under src/");
        // The database service configures the postgres image, whose entrypoint reads these (its documented variables).
        string[] postgresImage = ["POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_INITDB_ARGS", "PGDATA"];
        foreach (var service in compose.Services.Where(s => s.IsDatabase))
            foreach (var name in service.Environment.Keys.Where(n => !postgresImage.Contains(n)))
                problems.Add($"service {service.Name}: environment {name} is not one the postgres image reads");
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Fact]
    public void PathsTheServicesUseExistInTheirContainers()
    {
        var (compose, image) = (Compose.Load(Root), DockerImage.Load(Root));
        var problems = new List<string>();
        foreach (var service in compose.AppServices(problems))
        {
            var fs = new ContainerFiles(image, service);
            var args = ContainerArguments(image, service, problems) ?? [];
            foreach (var path in args.Where(a => a.StartsWith('/')))
                fs.Require(path, $"service {service.Name}: its command names {path}", problems);
            foreach (var (name, value) in service.Environment.Concat(image.Environment))
                if (value.StartsWith('/') && name != "RSCAPRET_BACKBONES")   // backbones/: imported on the host, optional (docs/docker.md)
                    fs.Require(value, $"service {service.Name}: {name}={value}", problems);

            // The model every command uses unless told otherwise: models/default beside the binary (CommonOptions.ResolveModel).
            var model = service.Environment.GetValueOrDefault("RSCAPRET_MODEL") is { Length: > 0 } m ? m : $"{image.AppDirectory}/models/default";
            RequireModelFolder(fs, model, $"service {service.Name}: the model", problems);

            // serve registers the recurring jobs of --jobs (default ./jobs): the folder loads, and what its jobs read exists.
            if (args is ["serve", ..])
            {
                var i = Array.IndexOf(args.ToArray(), "--jobs");
                var jobs = i >= 0 && i + 1 < args.Count ? args[i + 1] : $"{image.WorkingDirectory}/jobs";
                RequireJobs(fs, jobs, $"service {service.Name}", problems);
            }
        }
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Fact]
    public void ImageHoldsWhatTheProductNeedsAtRunTime()
    {
        var image = DockerImage.Load(Root);
        var fs = new ContainerFiles(image, null);   // the image alone, no volumes
        var problems = new List<string>();

        // Migrations and the map page travel inside the assemblies the image runs (EmbeddedResource), all of them.
        var sql = Directory.GetFiles(Path.Combine(Root, "migrations"), "*.sql").Select(f => Path.GetFileName(f)!).ToHashSet();
        var embedded = MigrationRunner.Embedded().Select(m => $"{m.Version:D4}_{m.Name}.sql").ToHashSet();
        if (!sql.SetEquals(embedded))
            problems.Add($"the migrations inside the assembly ({embedded.Count}) are not migrations/*.sql ({sql.Count}): {string.Join(", ", sql.Except(embedded).Concat(embedded.Except(sql)))}");
        var webDir = Path.Combine(Root, "src", "RsCapRet.Web", "web");
        var web = Directory.GetFiles(webDir, "*", SearchOption.AllDirectories).Select(f => "web/" + Path.GetRelativePath(webDir, f).Replace('\\', '/')).ToHashSet();
        var assets = typeof(RsCapRet.Web.MapPageAssets).Assembly.GetManifestResourceNames().Where(n => n.StartsWith("web/")).ToHashSet();
        if (!web.Contains("web/index.html") || !web.SetEquals(assets))
            problems.Add($"the map page's assets inside the assembly are not src/RsCapRet.Web/web: {string.Join(", ", web.Except(assets).Concat(assets.Except(web)))}");
        fs.Require($"{image.WorkingDirectory}/migrations/0001_extensions.sql", "the image's migrations/ (for psql and operators)", problems);

        // The binary, its TorchSharp natives (libtorch), the default model and the jobs folder.
        CliOfEntrypoint(image, problems);
        foreach (var lib in new[] { "libLibTorchSharp.so", "libtorch.so", "libtorch_cpu.so", "libc10.so" })
            fs.Require($"{image.AppDirectory}/{lib}", $"TorchSharp's native {lib}", problems);
        RequireModelFolder(fs, $"{image.AppDirectory}/models/default", "the image's default model", problems);
        // The jobs folder loads; what its jobs read (the archive) is a volume, checked per service above.
        RequireJobs(fs, $"{image.WorkingDirectory}/jobs", "the image", problems, argumentPaths: false);

        // GDAL is the system library (GdalNative binds libgdal.so.N at run time): installed, and the build's smoke run
        // reads a raster with it and captions it with libtorch, so an image that cannot do either does not build.
        if (!image.FinalRuns.Any(r => Regex.IsMatch(r, @"apt-get install\b[^&;]*\b(gdal-bin|libgdal\d+)")))
            problems.Add("Dockerfile: the final stage installs no GDAL (gdal-bin or libgdalNN)");
        if (!image.CliRuns.Any(r => r is ["caption", ..]))
            problems.Add("Dockerfile: no smoke run of `rscapret caption` (GDAL + libtorch + the default model) in the final stage");
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Fact]
    public void DatabaseImageEnsuresPgvectorForTheMigrations()
    {
        var compose = Compose.Load(Root);
        var db = Assert.Single(compose.Services, s => s.IsDatabase);
        var dockerfile = File.ReadAllText(Path.Combine(Root, db.BuildContext!, "Dockerfile"));
        // The migrations use pgvector 0.8's iterative index scans; the build refuses an older extension.
        Assert.Contains(Directory.GetFiles(Path.Combine(Root, "migrations"), "*.sql"), f => File.ReadAllText(f).Contains("hnsw.iterative_scan"));
        var min = Regex.Match(dockerfile, @"ARG PGVECTOR_MIN=(\d+\.\d+(\.\d+)?)");
        Assert.True(min.Success, $"{db.BuildContext}/Dockerfile declares no ARG PGVECTOR_MIN");
        Assert.True(System.Version.Parse(min.Groups[1].Value) >= new System.Version(0, 8), $"PGVECTOR_MIN {min.Groups[1].Value} is below 0.8");
        Assert.Matches(@"dpkg --compare-versions ""\$version"" ge ""\$PGVECTOR_MIN""", dockerfile);
        Assert.Contains("vector.control", dockerfile);
    }

    [Fact]
    public void DockerWalkthroughMatchesTheFiles()
    {
        var (compose, image) = (Compose.Load(Root), DockerImage.Load(Root));
        var walkthrough = "docs/docker.md";
        var section = File.ReadAllText(Path.Combine(Root, walkthrough));
        Assert.False(string.IsNullOrWhiteSpace(section), $"{walkthrough} is empty");
        var problems = new List<string>();
        if (!section.Contains(nameof(DeploymentFilesTests)))   // says what checks the files where no engine runs
            problems.Add($"{walkthrough} does not say that {nameof(DeploymentFilesTests)} is the check without an engine");
        var commands = 0;
        foreach (var line in ShellLines(section))
        {
            var words = ShellWords(line).SkipWhile(w => Regex.IsMatch(w, "^[A-Z_][A-Z0-9_]*=")).ToList();
            if (words.Count < 2 || words[0] != "docker" || words[1] != "compose") continue;
            commands++;
            var rest = words.Skip(2).ToList();
            while (rest.Count > 1 && rest[0] is "--profile" or "-f" or "--file")
            {
                if (rest[0] == "--profile" && !compose.Services.Any(s => s.Profiles.Contains(rest[1])))
                    problems.Add($"{walkthrough}: `{line}`: no service has the profile {rest[1]}");
                rest = rest.Skip(2).ToList();
            }
            for (var i = 0; i < rest.Count; i++)
            {
                var scale = rest[i].StartsWith("--scale=") ? rest[i]["--scale=".Length..] : rest[i] == "--scale" && i + 1 < rest.Count ? rest[i + 1] : null;
                if (scale is not null && compose.Services.All(s => s.Name != scale.Split('=')[0]))
                    problems.Add($"{walkthrough}: `{line}`: --scale names no service ({scale})");
            }
            if (rest.FirstOrDefault() != "run") continue;
            var runArgs = rest.Skip(1).ToList();
            while (runArgs.Count > 0 && runArgs[0].StartsWith('-'))
                runArgs = runArgs.Skip(runArgs[0] is "-e" or "--env" or "-v" or "--volume" or "-w" or "--workdir" or "-u" or "--user" or "--name" ? 2 : 1).ToList();
            var service = compose.Services.FirstOrDefault(s => s.Name == runArgs.FirstOrDefault());
            if (service is null || service.IsDatabase) { problems.Add($"{walkthrough}: `{line}`: runs no service of the rscapret image"); continue; }
            var args = runArgs.Count > 1 ? runArgs.Skip(1).ToList() : ContainerArguments(image, service, problems);
            if (args is not null && Verdict(args) is { } error) problems.Add($"{walkthrough}: `{line}` exits 2 at once: {error}");
            var fs = new ContainerFiles(image, service);
            foreach (var path in args?.Where(a => a.StartsWith('/')) ?? []) fs.Require(path, $"{walkthrough}: `{line}` names {path}", problems);
        }
        if (commands == 0) problems.Add($"{walkthrough} shows no docker compose command");
        foreach (var needed in new[] { "--scale worker=", "--profile gpu" })
            if (!section.Contains(needed)) problems.Add($"{walkthrough} does not show `{needed}`");
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    // ----------------------------------------------------------------------------------------------------------------

    /// <summary>The CLI's arguments in a service's container: the Dockerfile's ENTRYPOINT is `dotnet rscapret.dll`.</summary>
    private static IReadOnlyList<string>? ContainerArguments(DockerImage image, ComposeService service, List<string> problems)
    {
        if (service.Entrypoint is not null)
        {
            problems.Add($"service {service.Name}: overrides the entrypoint, which this test does not follow");
            return null;
        }
        return CliOfEntrypoint(image, []) is null ? null : service.Command ?? image.Cmd ?? [];
    }

    /// <summary>The CLI assembly ENTRYPOINT runs, checked to be this CLI's (its name) and in the image; null if not.</summary>
    private static string? CliOfEntrypoint(DockerImage image, List<string> problems)
    {
        var cli = typeof(CliApp).Assembly.GetName().Name + ".dll";
        if (image.Entrypoint is not ["dotnet", { } dll] || dll != cli)
        {
            problems.Add($"Dockerfile: ENTRYPOINT must be [\"dotnet\", \"{cli}\"] (exec form), is {JsonSerializer.Serialize(image.Entrypoint)}");
            return null;
        }
        new ContainerFiles(image, null).Require(image.Resolve(dll), $"Dockerfile: ENTRYPOINT's {dll}", problems);
        return dll;
    }

    private static void RequireModelFolder(ContainerFiles fs, string folder, string what, List<string> problems)
    {
        var config = $"{folder}/rscapret.json";
        if (fs.HostPath(config) is not { } json || !File.Exists(json)) { problems.Add($"{what}: {config} is not in the container"); return; }
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        foreach (var key in new[] { "llm", "vision", "tokenizer", "heads" })
        {
            var value = doc.RootElement.TryGetProperty(key, out var v) ? v.GetString() : null;
            if (value is null) { problems.Add($"{what}: {config} names no {key}"); continue; }
            if (value.StartsWith("backbone:"))
                problems.Add($"{what}: {key} is {value}, an imported backbone the image does not carry (models/backbones is not committed)");
            else fs.Require(value.StartsWith('/') ? value : $"{folder}/{value}", $"{what}: its {key}", problems);
        }
    }

    private static void RequireJobs(ContainerFiles fs, string folder, string what, List<string> problems, bool argumentPaths = true)
    {
        if (fs.HostPath(folder) is not { } dir || !Directory.Exists(dir)) { problems.Add($"{what}: the jobs folder {folder} is not in the container"); return; }
        var jobs = JobDefinition.LoadDirectory(dir);
        if (jobs.Count == 0) problems.Add($"{what}: the jobs folder {folder} defines no job");
        if (!argumentPaths) return;
        var baseDir = folder.TrimEnd('/')[..folder.TrimEnd('/').LastIndexOf('/')];   // RecurringJobDefinitions: relative to the folder's parent
        foreach (var job in jobs)
            foreach (var (arg, value) in job.Args.Where(a => a.Key is "root" or "model" or "path" or "config" or "dataset"))
                fs.Require(value.StartsWith('/') ? value : $"{baseDir}/{value}", $"{what}: job {job.Id}'s {arg} ({value})", problems);
    }

    /// <summary>Names the product reads from the environment: RSCAPRET_* literals and GetEnvironmentVariable("...") arguments under src/.</summary>
    private static HashSet<string> ProductEnvironmentVariables()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Root, "src"), "*.cs", SearchOption.AllDirectories)
                     .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}")))
        {
            var text = File.ReadAllText(file);
            foreach (Match m in Regex.Matches(text, @"""(RSCAPRET_[A-Z0-9_]+)""|GetEnvironmentVariable\(""([A-Za-z0-9_]+)""\)"))
                names.Add(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value);
        }
        return names;
    }

    /// <summary>Command lines of the ```bash blocks (continuations joined, comments cut).</summary>
    private static IEnumerable<string> ShellLines(string markdown)
    {
        foreach (Match block in Regex.Matches(markdown, @"```(?:bash|sh|shell)?\n(.*?)```", RegexOptions.Singleline))
        {
            var joined = Regex.Replace(block.Groups[1].Value, @"\\\n\s*", " ");
            foreach (var raw in joined.Split('\n'))
            {
                var line = Regex.Replace(raw, @"(^|\s)#.*$", "").Trim();
                if (line.Length > 0) yield return line;
            }
        }
    }

    /// <summary>Words of a shell command line, quotes removed (no expansions).</summary>
    private static List<string> ShellWords(string line)
    {
        var words = new List<string>();
        var word = new System.Text.StringBuilder();
        var (quote, any) = ((char?)null, false);
        foreach (var c in line)
        {
            if (quote is { } q) { if (c == q) quote = null; else word.Append(c); continue; }
            if (c is '"' or '\'') { quote = c; any = true; continue; }
            if (char.IsWhiteSpace(c)) { if (word.Length > 0 || any) words.Add(word.ToString()); word.Clear(); any = false; continue; }
            word.Append(c);
        }
        if (word.Length > 0 || any) words.Add(word.ToString());
        return words;
    }

    // ---- docker-compose.yml --------------------------------------------------------------------------------------

    internal sealed record ComposeService(
        string Name, string? BuildContext, string? Dockerfile, string? Image, IReadOnlyList<string>? Command, IReadOnlyList<string>? Entrypoint,
        IReadOnlyDictionary<string, string> Environment, IReadOnlyList<(string Source, string Target)> Volumes, IReadOnlyList<string> Profiles)
    {
        public bool IsDatabase => BuildContext is { } c && c.TrimEnd('/') == "docker/db";
        public bool IsApp => BuildContext is { } c && c.TrimEnd('/') is "." or "" && (Dockerfile ?? "Dockerfile") == "Dockerfile";
    }

    internal sealed class Compose
    {
        // Service keys this test knows the meaning of; anything else is more likely a typo (`comand`) than a feature.
        private static readonly HashSet<string> ServiceKeys =
        [
            "build", "image", "command", "entrypoint", "environment", "volumes", "depends_on", "ports", "healthcheck", "profiles",
            "deploy", "restart", "platform", "stop_grace_period", "stop_signal", "shm_size", "init", "labels", "logging", "gpus",
        ];

        public required IReadOnlyList<ComposeService> Services { get; init; }

        public IEnumerable<ComposeService> AppServices(List<string> problems)
        {
            foreach (var s in Services.Where(s => !s.IsApp && !s.IsDatabase))
                problems.Add($"service {s.Name}: builds neither the root Dockerfile nor docker/db, so nothing here checks it");
            return Services.Where(s => s.IsApp);
        }

        public static Compose Load(string root)
        {
            var yaml = new YamlStream();
            using (var reader = new StringReader(File.ReadAllText(Path.Combine(root, "docker-compose.yml"))))
                yaml.Load(reader);
            var top = Merged((YamlMappingNode)yaml.Documents.Single().RootNode);
            var services = new List<ComposeService>();
            foreach (var (key, node) in ((YamlMappingNode)top["services"]).Children)
            {
                var name = Scalar(key)!;
                var service = (YamlMappingNode)node;
                var unknown = service.Children.Keys.Select(Scalar).Where(k => k is not null && !ServiceKeys.Contains(k)).ToList();
                Assert.True(unknown.Count == 0, $"service {name}: keys this test does not know: {string.Join(", ", unknown)}");
                var build = Get(service, "build");
                services.Add(new ComposeService(
                    name,
                    build is YamlScalarNode b ? Scalar(b) : build is YamlMappingNode bm ? Scalar(Get(bm, "context")) ?? "." : null,
                    build is YamlMappingNode bm2 ? Scalar(Get(bm2, "dockerfile")) : null,
                    Scalar(Get(service, "image")),
                    Words(Get(service, "command")),
                    Words(Get(service, "entrypoint")),
                    Environment(Get(service, "environment")),
                    Volumes(Get(service, "volumes")),
                    Words(Get(service, "profiles")) ?? []));
            }
            return new Compose { Services = services };
        }

        /// <summary>
        /// YAML merge keys as docker compose applies them: `&lt;&lt;: *app` (or a list of aliases) adds the anchored mapping's
        /// entries that the mapping does not set itself, at every level.
        /// </summary>
        private static YamlMappingNode Merged(YamlMappingNode map)
        {
            var result = new YamlMappingNode();
            var mergeKey = new YamlScalarNode("<<");
            foreach (var (key, value) in map.Children.Where(c => !c.Key.Equals(mergeKey)))
                result.Add(key, value is YamlMappingNode m ? Merged(m) : value);
            if (map.Children.TryGetValue(mergeKey, out var merge))
                foreach (var source in merge is YamlSequenceNode list ? list.Children.Cast<YamlMappingNode>() : [(YamlMappingNode)merge])
                    foreach (var (key, value) in Merged(source).Children.Where(c => !result.Children.ContainsKey(c.Key)))
                        result.Add(key, value);
            return result;
        }

        private static YamlNode? Get(YamlMappingNode map, string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

        private static string? Scalar(YamlNode? node) => node is YamlScalarNode s ? Interpolate(s.Value ?? "") : null;

        /// <summary>A list, or a string split on spaces as compose splits a string command.</summary>
        private static List<string>? Words(YamlNode? node) => node switch
        {
            YamlSequenceNode seq => seq.Children.Select(c => Scalar(c)!).ToList(),
            YamlScalarNode s => ShellWords(Scalar(s)!),
            _ => null,
        };

        private static Dictionary<string, string> Environment(YamlNode? node) => node switch
        {
            YamlMappingNode map => map.Children.ToDictionary(c => Scalar(c.Key)!, c => Scalar(c.Value) ?? ""),
            YamlSequenceNode seq => seq.Children.Select(c => Scalar(c)!.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : ""),
            _ => new Dictionary<string, string>(),
        };

        private static List<(string, string)> Volumes(YamlNode? node) =>
            node is not YamlSequenceNode seq ? [] : seq.Children.Select(c => c switch
            {
                YamlMappingNode m => (Scalar(Get(m, "source")) ?? "", Scalar(Get(m, "target"))!),
                _ => Scalar(c)!.Split(':') is var parts && parts.Length >= 2 ? (parts[0], parts[1]) : ("", parts[0]),
            }).ToList();

        /// <summary>
        /// Compose's variable syntax with nothing set: ${VAR:-default} and ${VAR-default} give the default (what a plain
        /// `docker compose up` uses), a variable that must be set gives a placeholder, $$ is a dollar.
        /// </summary>
        public static string Interpolate(string value) =>
            Regex.Replace(value, @"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*)|(:?\?)([^}]*))?\}", m =>
                m.Value == "$$" ? "$" : m.Groups[2].Success ? m.Groups[3].Value : $"<{m.Groups[1].Value}>");
    }

    // ---- Dockerfile ----------------------------------------------------------------------------------------------

    internal sealed class DockerImage
    {
        public required string Root { get; init; }
        public required string WorkingDirectory { get; init; }
        /// <summary>Where the build stage's `dotnet publish -o` output lands (COPY --from=build /out DEST).</summary>
        public required string AppDirectory { get; init; }
        public required IReadOnlyList<string>? Entrypoint { get; init; }
        public required IReadOnlyList<string>? Cmd { get; init; }
        public required IReadOnlyDictionary<string, string> Environment { get; init; }
        /// <summary>Final-stage COPY lines: container path → repository path (relative), or null for the publish output.</summary>
        public required IReadOnlyList<(string Target, string? Source)> Copies { get; init; }
        public required IReadOnlyList<string> FinalRuns { get; init; }
        /// <summary>Arguments of the final stage's `dotnet rscapret.dll ...` runs.</summary>
        public required IReadOnlyList<IReadOnlyList<string>> CliRuns { get; init; }
        public required IReadOnlyList<string> DockerIgnore { get; init; }

        /// <summary>An absolute container path: relative to WORKDIR, "." and ".." segments resolved.</summary>
        public string Resolve(string path)
        {
            var segments = new List<string>();
            foreach (var segment in (path.StartsWith('/') ? path : $"{WorkingDirectory}/{path}").Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                if (segment == "..") { if (segments.Count > 0) segments.RemoveAt(segments.Count - 1); }
                else if (segment != ".") segments.Add(segment);
            }
            return "/" + string.Join('/', segments);
        }

        public static DockerImage Load(string root)
        {
            var lines = new List<string>();
            var current = "";
            foreach (var raw in File.ReadAllLines(Path.Combine(root, "Dockerfile")))
            {
                if (raw.TrimStart().StartsWith('#') || (current.Length == 0 && raw.Trim().Length == 0)) continue;
                if (raw.TrimEnd().EndsWith('\\')) { current += raw.TrimEnd()[..^1] + " "; continue; }
                lines.Add((current + raw).Trim());
                current = "";
            }
            var stages = new List<List<(string Op, string Args)>>();
            foreach (var line in lines.Where(l => l.Length > 0))
            {
                var split = line.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
                var (op, rest) = (split[0].ToUpperInvariant(), split.Length > 1 ? split[1].Trim() : "");
                if (op == "FROM") stages.Add([]);
                stages[^1].Add((op, rest));
            }
            var build = stages.Single(s => Regex.IsMatch(s[0].Args, @"\bAS build$", RegexOptions.IgnoreCase));
            var publish = build.Where(i => i.Op == "RUN").Select(i => Regex.Match(i.Args, @"dotnet publish (\S+).*?-o (\S+)")).Single(m => m.Success);
            Assert.Equal("src/RsCapRet.Cli", publish.Groups[1].Value.TrimEnd('/'));
            var outDir = publish.Groups[2].Value;

            var (workdir, app) = ("/", (string?)null);
            var copies = new List<(string, string?)>();
            var env = new Dictionary<string, string>();
            var runs = new List<string>();
            IReadOnlyList<string>? entrypoint = null, cmd = null;
            foreach (var (op, rest) in stages[^1])
            {
                switch (op)
                {
                    case "WORKDIR":
                        workdir = rest.StartsWith('/') ? rest : $"{workdir.TrimEnd('/')}/{rest}";
                        break;
                    case "ENV":
                        foreach (Match m in Regex.Matches(rest, @"([A-Za-z_][A-Za-z0-9_]*)=(""[^""]*""|\S+)")) env[m.Groups[1].Value] = m.Groups[2].Value.Trim('"');
                        break;
                    case "RUN":
                        runs.Add(rest);
                        break;
                    case "ENTRYPOINT":
                        entrypoint = JsonSerializer.Deserialize<string[]>(rest);
                        break;
                    case "CMD":
                        cmd = JsonSerializer.Deserialize<string[]>(rest);
                        break;
                    case "COPY":
                        var words = rest.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                        var from = words.FirstOrDefault(w => w.StartsWith("--from="))?["--from=".Length..];
                        var paths = words.Where(w => !w.StartsWith("--")).ToList();
                        var dest = paths[^1] is "." or "./" ? workdir : paths[^1].StartsWith('/') ? paths[^1] : $"{workdir.TrimEnd('/')}/{paths[^1].TrimStart('.', '/')}";
                        foreach (var source in paths.SkipLast(1))
                        {
                            if (from is not null)
                            {
                                Assert.True(from == "build" && source.TrimEnd('/') == outDir, $"Dockerfile: COPY --from={from} {source}: not the build stage's publish output {outDir}");
                                copies.Add((dest.TrimEnd('/'), null));
                                app = dest.TrimEnd('/');
                                continue;
                            }
                            var isDir = Directory.Exists(Path.Combine(root, source));
                            var target = isDir || !paths[^1].EndsWith('/') ? dest : $"{dest.TrimEnd('/')}/{Path.GetFileName(source)}";
                            copies.Add((target.TrimEnd('/'), source.TrimEnd('/')));
                        }
                        break;
                }
            }
            var cliRuns = new List<IReadOnlyList<string>>();
            foreach (var run in runs)
                foreach (var part in Regex.Split(run, @"&&|\|\||;|\|"))
                    if (ShellWords(part.Trim()) is ["dotnet", "rscapret.dll", .. var args]) cliRuns.Add(args);
            var ignore = File.Exists(Path.Combine(root, ".dockerignore"))
                ? File.ReadAllLines(Path.Combine(root, ".dockerignore")).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList()
                : [];
            return new DockerImage
            {
                Root = root, WorkingDirectory = workdir, AppDirectory = app ?? throw new InvalidOperationException("Dockerfile: the publish output is never copied into the final stage"),
                Entrypoint = entrypoint, Cmd = cmd, Environment = env, Copies = copies, FinalRuns = runs, CliRuns = cliRuns, DockerIgnore = ignore,
            };
        }

        /// <summary>Whether .dockerignore keeps a context path (relative, '/') out of the build context.</summary>
        public bool Ignored(string relative)
        {
            foreach (var pattern in DockerIgnore.Where(p => !p.StartsWith('!')))
            {
                var regex = "^" + Regex.Escape(pattern.Trim('/')).Replace(@"\*\*/", "(.*/)?").Replace(@"\*\*", ".*").Replace(@"\*", "[^/]*").Replace(@"\?", "[^/]") + "(/.*)?$";
                if (Regex.IsMatch(relative, regex)) return true;
            }
            return false;
        }
    }

    /// <summary>A service's container file system: its volumes over the image's COPY lines, each mapped back to this checkout.</summary>
    internal sealed class ContainerFiles(DockerImage image, ComposeService? service)
    {
        /// <summary>The file or folder in this checkout (or in the CLI's build output) a container path shows; null if none.</summary>
        public string? HostPath(string containerPath)
        {
            containerPath = image.Resolve(containerPath);
            var mounts = (service?.Volumes ?? []).Select(v => (Target: v.Target.TrimEnd('/'), Source: (string?)v.Source, Mount: true))
                .Concat(image.Copies.Select(c => (c.Target, c.Source, Mount: false)))
                .Where(m => containerPath == m.Target || containerPath.StartsWith(m.Target + "/"))
                .OrderByDescending(m => m.Target.Length).ThenByDescending(m => m.Mount)   // a volume hides what the image has there
                .ToList();
            foreach (var (target, source, mount) in mounts)
            {
                var rest = containerPath[target.Length..].TrimStart('/');
                if (mount)
                {
                    // A bind mount of a checkout path (compose resolves ./x against the compose file's folder); a named volume is empty.
                    if (source is null || !(source.StartsWith("./") || source.StartsWith("../") || source == ".")) return null;
                    return Path.GetFullPath(Path.Combine(image.Root, source, rest));
                }
                if (source is null)   // the publish output: the CLI's own build output here has the same files
                    return Path.Combine(AppContext.BaseDirectory, rest);
                var relative = rest.Length == 0 ? source : $"{source}/{rest}";
                if (image.Ignored(relative.TrimStart('.', '/'))) return null;
                var host = Path.Combine(image.Root, relative);
                if (File.Exists(host) || Directory.Exists(host)) return host;
                // A single file copied to this path: it is the path itself, so a deeper one does not exist.
                if (File.Exists(Path.Combine(image.Root, source))) return null;
                return host;
            }
            return null;
        }

        public void Require(string containerPath, string what, List<string> problems)
        {
            var host = HostPath(containerPath);
            if (host is null || !(File.Exists(host) || Directory.Exists(host)))
                problems.Add($"{what}: {image.Resolve(containerPath)} is not in the container" +
                             (host is null ? " (no COPY line or volume provides it)"
                                 : host.StartsWith(AppContext.BaseDirectory) ? $" (it would be {Path.GetRelativePath(AppContext.BaseDirectory, host)} of the publish output, which has none)"
                                 : $" (it would come from {Path.GetRelativePath(image.Root, host)}, which does not exist)"));
        }
    }
}
