using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using RsCapRet.Core.Configuration;

namespace RsCapRet.Web;

/// <summary>
/// The settings of `rscapret serve`: the bounds on what requests may make it do, who may reach it (host names,
/// proxies, basic auth), how scene paths are shown, and its request log. The host reads them through
/// <see cref="HostLimits"/>, <see cref="QueryVectorOptions"/>, <see cref="TrustedProxies"/>, <see cref="RequestLogging"/>,
/// <see cref="RequestOriginChecks"/>, <see cref="DashboardCredentials"/> and <see cref="ScenePathDisplay"/>.
/// </summary>
public sealed class WebOptions : IChecksSettings
{
    /// <summary>Requests running the model (land use, image search, changes toward a text, cells) at once or waiting; beyond: 503.</summary>
    [EnvironmentVariable(HostLimits.ModelQueueVariable, SettingRule.PositiveInteger)]
    public int ModelQueue { get; init; } = 4;

    /// <summary>Bands an uploaded image may declare.</summary>
    [EnvironmentVariable(HostLimits.MaxUploadBandsVariable, SettingRule.PositiveInteger)]
    public int MaxUploadBands { get; init; } = 4;

    /// <summary>Pixels an uploaded image may declare before it is decoded.</summary>
    [EnvironmentVariable("RSCAPRET_MAX_UPLOAD_PIXELS", SettingRule.PositiveInteger)]
    public long MaxUploadPixels { get; init; } = 50_000_000;

    /// <summary>Text queries embedded in one [RET] forward pass at most (0 counts as 1).</summary>
    [EnvironmentVariable("RSCAPRET_QUERY_BATCH", SettingRule.NonNegativeInteger)]
    public int QueryBatch { get; init; } = 32;

    /// <summary>How long a batch's first query waits for others, in milliseconds.</summary>
    [EnvironmentVariable("RSCAPRET_QUERY_BATCH_WINDOW_MS", SettingRule.NonNegativeInteger)]
    public int QueryBatchWindowMs { get; init; } = 3;

    /// <summary>Text queries that may wait (0 counts as 1); beyond: 503.</summary>
    [EnvironmentVariable("RSCAPRET_QUERY_QUEUE", SettingRule.NonNegativeInteger)]
    public int QueryQueue { get; init; } = 256;

    /// <summary>Recent query texts whose vectors are kept (0: none).</summary>
    [EnvironmentVariable("RSCAPRET_QUERY_CACHE", SettingRule.NonNegativeInteger)]
    public int QueryCache { get; init; } = 4096;

    /// <summary>Reverse proxies (addresses, CIDR networks; comma-separated) whose X-Forwarded-For names the client.</summary>
    [EnvironmentVariable(Web.TrustedProxies.Variable)]
    public string? TrustedProxies { get; init; }

    /// <summary>The request log: summary, debug or info.</summary>
    [EnvironmentVariable(RequestLogging.ModeVariable)]
    public string RequestLog { get; init; } = "summary";

    /// <summary>Seconds between request summaries at information (0: none).</summary>
    [EnvironmentVariable(RequestLogging.SummaryVariable, SettingRule.NonNegativeInteger)]
    public int RequestSummarySeconds { get; init; } = 600;

    /// <summary>Host names the server answers to besides loopback (comma-separated, "*" for any).</summary>
    [EnvironmentVariable(RequestOriginChecks.AllowedHostsVariable)]
    public string? AllowedHosts { get; init; }

    /// <summary>Basic-auth user of a host reachable from other machines (with <see cref="DashboardPassword"/>).</summary>
    [EnvironmentVariable(DashboardCredentials.UserVariable)]
    public string? DashboardUser { get; init; }

    [EnvironmentVariable(DashboardCredentials.PasswordVariable)]
    public string? DashboardPassword { get; init; }

    /// <summary>The archive root scene paths are shown relative to (else by file name only).</summary>
    [EnvironmentVariable(ScenePathDisplay.RootVariable)]
    public string? ArchiveRoot { get; init; }

    public static WebOptions FromEnvironment() => EnvironmentSettings.Load<WebOptions>();

    public IEnumerable<string> Problems()
    {
        var problems = new List<string>();
        try { Web.TrustedProxies.Parse(TrustedProxies); }
        catch (FormatException e) { problems.Add(e.Message); }
        if (RequestLogging.ParseMode(RequestLog) is null)
            problems.Add($"{RequestLogging.ModeVariable}: must be summary, debug or info, got '{RequestLog}'");
        return problems;
    }
}

/// <summary>The Options pattern for options classes bound by <see cref="EnvironmentSettings"/>: checked when the host starts.</summary>
public static class SettingsRegistration
{
    /// <summary>The options classes `serve` reads (itself, its queries), each registered with <see cref="AddSettings{T}"/>; the job queue's
    /// come with the jobs its caller registers (RsCapRet.Cli.WebHostJobs).</summary>
    public static readonly IReadOnlyList<Action<IServiceCollection, IConfiguration>> HostSettings =
    [
        (s, c) => s.AddSettings<WebOptions>(c),
        (s, c) => s.AddSettings<Queries.ModelWorkLimits>(c),
        (s, c) => s.AddSettings<Queries.TileCacheOptions>(c),
        (s, c) => s.AddSettings<Storage.DatabaseOptions>(c),
        (s, c) => s.AddSettings<DataPathOptions>(c),
        (s, c) => s.AddSettings<Model.ModelOptions>(c),
        (s, c) => s.AddSettings<Raster.RasterOptions>(c),
        (s, c) => s.AddSettings<Pipeline.SceneClaimOptions>(c),
    ];

    public static OptionsBuilder<T> AddSettings<T>(this IServiceCollection services, IConfiguration configuration) where T : class, new()
    {
        services.AddSingleton<IValidateOptions<T>>(new SettingsValidation<T>(configuration));
        return services.AddOptions<T>().Configure(options => EnvironmentSettings.BindInto(options, configuration)).ValidateOnStart();
    }

    private sealed class SettingsValidation<T>(IConfiguration configuration) : IValidateOptions<T> where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options) =>
            EnvironmentSettings.Problems(configuration, [typeof(T)]) is { Count: > 0 } problems
                ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }
}
