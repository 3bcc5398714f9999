using RsCapRet.Core.Configuration;

namespace RsCapRet.Cli;

/// <summary>
/// Every options class the CLI and the processes it starts (workers, `serve`) read: checked before any command runs,
/// so a bad value is one "error: VARIABLE: ..." line (each bad value its own) and exit 2, not a failure half-way.
/// </summary>
public static class ConfigurationCheck
{
    public static readonly IReadOnlyList<Type> OptionTypes =
    [
        typeof(DataPathOptions),
        typeof(Storage.DatabaseOptions),
        typeof(Model.ModelOptions),
        typeof(Raster.RasterOptions),
        typeof(Pipeline.SceneClaimOptions),
        typeof(Queries.ModelWorkLimits),
        typeof(Queries.TileCacheOptions),
        typeof(Jobs.JobsOptions),
        typeof(Evaluation.MetricOptions),
        typeof(Web.WebOptions),
    ];

    /// <summary>One message per bad value of the process environment, none when all are good.</summary>
    public static IReadOnlyList<string> Problems() => EnvironmentSettings.Problems(EnvironmentSettings.FromEnvironment(), OptionTypes);
}
