using RsCapRet.Core.Configuration;

namespace RsCapRet.Pipeline;

/// <summary>How long a scene claimed by a worker, `rscapret ingest` or the demo stays its holder's (<see cref="IngestOptions.Lease"/>).</summary>
public sealed class SceneClaimOptions
{
    [EnvironmentVariable(IngestOptions.LeaseVariable, SettingRule.PositiveInteger)]
    public int LeaseSeconds { get; init; } = 600;
}
