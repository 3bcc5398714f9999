using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using RsCapRet.Core;
using RsCapRet.Core.Configuration;
using RsCapRet.Web;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// Issue 33, item 4: one configuration model. The README's configuration table and the options classes name the same
/// variables, the CLI checks every options class, and a bad value is one message naming the variable.
/// </summary>
public class ConfigurationTableTests
{
    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    private static IEnumerable<string> BoundVariables() =>
        ConfigurationCheck.OptionTypes.SelectMany(EnvironmentSettings.BoundProperties).Select(p => p.Variable.Name);

    /// <summary>The README's configuration table: variable → its "read by" cell.</summary>
    private static Dictionary<string, string> DocumentedVariables()
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryPaths.FindRoot(), "README.md"));
        var header = Array.IndexOf(lines, "| variable | meaning | default | read by |");
        Assert.True(header >= 0, "README.md has no configuration table with a 'read by' column");
        var rows = new Dictionary<string, string>();
        foreach (var line in lines.Skip(header + 2).TakeWhile(l => l.StartsWith('|')))
        {
            var m = Regex.Match(line, @"^\| `(?<name>[A-Z0-9_]+)` \|.*\| (?<by>[^|]+) \|$");
            Assert.True(m.Success, $"README.md: a configuration row does not read '| `VARIABLE` | meaning | default | read by |': {line}");
            Assert.True(rows.TryAdd(m.Groups["name"].Value, m.Groups["by"].Value.Trim()), $"README.md documents {m.Groups["name"].Value} twice");
        }
        return rows;
    }

    [Fact]
    public void TheReadmeTableDocumentsExactlyTheBoundVariables()
    {
        var bound = BoundVariables().ToList();
        Assert.Equal(bound.Count, bound.Distinct().Count());   // one options property per variable
        var documented = DocumentedVariables();
        var readByRscapret = documented.Where(d => d.Value.Split(',', StringSplitOptions.TrimEntries).Contains("rscapret")).Select(d => d.Key).ToHashSet();
        Assert.Empty(bound.Except(readByRscapret).Order());        // bound but not documented as read by rscapret
        Assert.Empty(readByRscapret.Except(bound).Order());        // documented as read by rscapret but bound by no options class
    }

    [Fact]
    public void TheCliChecksEveryOptionsClass()
    {
        // Every RsCapRet assembly the CLI loads, and every options class in them (a property with [EnvironmentVariable]).
        var assemblies = new Dictionary<string, Assembly>();
        var pending = new Stack<Assembly>([typeof(CliApp).Assembly]);
        while (pending.TryPop(out var assembly))
        {
            if (!assemblies.TryAdd(assembly.GetName().Name!, assembly)) continue;
            foreach (var name in assembly.GetReferencedAssemblies().Where(n => n.Name!.StartsWith("RsCapRet.", StringComparison.Ordinal)))
                pending.Push(Assembly.Load(name));
        }
        var found = EnvironmentSettings.OptionTypes(assemblies.Values).Select(t => t.FullName).Order().ToList();
        Assert.Equal(found, ConfigurationCheck.OptionTypes.Select(t => t.FullName).Order().ToList());
    }

    [Fact]
    public void SourceReadsNoRsCapRetVariableOutsideTheOptionsClasses()
    {
        var src = Path.Combine(RepositoryPaths.FindRoot(), "src");
        var reads = Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
            .SelectMany(f => File.ReadLines(f).Where(l => l.Contains("GetEnvironmentVariable(")).Select(l => $"{Path.GetRelativePath(src, f)}: {l.Trim()}"))
            // Other programs' variables (GDAL's cache, NuGet's package folder) are theirs, not settings of this project.
            .Where(l => !l.Contains("\"GDAL_CACHEMAX\"") && !l.Contains("\"NUGET_PACKAGES\""))
            .ToList();
        Assert.Empty(reads);
    }

    [Fact]
    public void EachBadValueIsOneMessageNamingTheVariable()
    {
        var problems = EnvironmentSettings.Problems(Config(
            ("RSCAPRET_MAX_GRID_TILES", "x"), ("RSCAPRET_QUERY_CACHE", "-1"), ("RSCAPRET_GDAL_NETWORK", "yes"),
            ("RSCAPRET_MODEL_QUEUE", "0"), ("RSCAPRET_MAX_LABELS", "99999999999"), ("RSCAPRET_TRUSTED_PROXIES", "10.0.0.1,proxy"),
            ("RSCAPRET_REQUEST_LOG", "loud"), ("RSCAPRET_ACQUIRED_PATTERN", "_(\\d{8})$"),
            ("RSCAPRET_TILE_CACHE_MB", " 64 "), ("RSCAPRET_DEVICE", "cpu")), ConfigurationCheck.OptionTypes);
        Assert.Equal(
        [
            "RSCAPRET_ACQUIRED_PATTERN: '_(\\d{8})$' has no (?<date>...) group",
            "RSCAPRET_GDAL_NETWORK: must be 1 (on) or 0 (off), got 'yes'",
            "RSCAPRET_MAX_GRID_TILES: must be a positive integer, got 'x'",
            "RSCAPRET_MAX_LABELS: must be at most 2147483647, got '99999999999'",
            "RSCAPRET_MODEL_QUEUE: must be a positive integer, got '0'",
            "RSCAPRET_QUERY_CACHE: must be an integer, 0 or more, got '-1'",
            "RSCAPRET_REQUEST_LOG: must be summary, debug or info, got 'loud'",
            "RSCAPRET_TRUSTED_PROXIES: 'proxy' is neither an IP address nor a CIDR network (e.g. 10.0.0.5, 10.0.0.0/24)",
        ], problems.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void ValuesBindAndUnsetOrBlankKeepTheDefaults()
    {
        var raster = EnvironmentSettings.Load<Raster.RasterOptions>(Config(("RSCAPRET_MAX_GRID_TILES", "1000"), ("RSCAPRET_GDAL_NETWORK", "1"), ("RSCAPRET_MAX_BLOCK_MB", " ")));
        Assert.Equal(1000, raster.MaxGridTiles);
        Assert.True(raster.GdalNetwork);
        Assert.Equal(256, raster.MaxBlockMb);
        Assert.Equal(64, raster.MaxDecodedBands);
        var web = EnvironmentSettings.Load<WebOptions>(Config(("RSCAPRET_QUERY_BATCH", "0"), ("RSCAPRET_DASHBOARD_USER", "ops")));
        Assert.Equal(0, web.QueryBatch);   // QueryVectorOptions counts 0 as 1, as before
        Assert.Equal("ops", web.DashboardUser);
        Assert.Null(web.DashboardPassword);
        Assert.Equal(600, web.RequestSummarySeconds);
        Assert.Equal("auto", EnvironmentSettings.Load<Model.ModelOptions>(Config()).Device);
        var e = Assert.Throws<SettingsException>(() => EnvironmentSettings.Load<Jobs.JobsOptions>(Config(("RSCAPRET_JOB_INVISIBILITY_SECONDS", "soon"))));
        Assert.Equal(["RSCAPRET_JOB_INVISIBILITY_SECONDS: must be a positive integer, got 'soon'"], e.Problems);
    }

    [Fact]
    public void TheWebHostsOptionsAreValidatedAtStart()
    {
        var services = new ServiceCollection();
        var config = Config(("RSCAPRET_MODEL_QUEUE", "many"), ("RSCAPRET_QUERY_QUEUE", "8"));
        foreach (var add in SettingsRegistration.HostSettings) add(services, config);
        using var provider = services.BuildServiceProvider();
        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
        Assert.Equal(["RSCAPRET_MODEL_QUEUE: must be a positive integer, got 'many'"], e.Failures);
        // Good values reach the options the host reads.
        var good = new ServiceCollection();
        foreach (var add in SettingsRegistration.HostSettings) add(good, Config(("RSCAPRET_QUERY_QUEUE", "8")));
        using var goodProvider = good.BuildServiceProvider();
        goodProvider.GetRequiredService<IStartupValidator>().Validate();
        Assert.Equal(8, goodProvider.GetRequiredService<IOptions<WebOptions>>().Value.QueryQueue);
    }

    [Fact]
    public async Task TheCliRefusesBadSettingsBeforeAnyCommandOneLineEach()
    {
        var psi = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "rscapret"), ["db", "status"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["RSCAPRET_MAX_GRID_TILES"] = "x";
        psi.Environment["RSCAPRET_SCENE_LEASE_SECONDS"] = "-5";
        psi.Environment["RSCAPRET_DB"] = "Host=127.0.0.1;Port=1;Timeout=1";   // never reached
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(deadline.Token);
        Assert.Equal(2, process.ExitCode);
        Assert.Equal("", await stdout);
        Assert.Equal(
            ["error: RSCAPRET_MAX_GRID_TILES: must be a positive integer, got 'x'", "error: RSCAPRET_SCENE_LEASE_SECONDS: must be a positive integer, got '-5'"],
            (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal));
    }
}
