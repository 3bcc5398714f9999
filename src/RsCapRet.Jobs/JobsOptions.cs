using RsCapRet.Core.Configuration;

namespace RsCapRet.Jobs;

/// <summary>The job queue's settings (Hangfire's storage, <see cref="HangfireSetup"/>).</summary>
public sealed class JobsOptions
{
    /// <summary>How long a job whose worker died stays invisible before it returns to its queue (live workers keep theirs: sliding).</summary>
    [EnvironmentVariable("RSCAPRET_JOB_INVISIBILITY_SECONDS", SettingRule.PositiveInteger)]
    public int InvisibilitySeconds { get; init; } = 300;
}
