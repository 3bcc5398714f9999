namespace RsCapRet.Core.Configuration;

/// <summary>What a setting's value must be; the binder refuses anything else with one message naming the variable.</summary>
public enum SettingRule
{
    /// <summary>Any text (a path, a connection string); an options class may check it further (<see cref="IChecksSettings"/>).</summary>
    Text,
    /// <summary>A whole number above 0.</summary>
    PositiveInteger,
    /// <summary>A whole number, 0 or more.</summary>
    NonNegativeInteger,
    /// <summary>1 (on) or 0 (off).</summary>
    Flag,
}

/// <summary>
/// Binds an options property to one environment variable (its exact name, the README's configuration table's key).
/// Unset or blank leaves the property's default.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
public sealed class EnvironmentVariableAttribute(string name, SettingRule rule = SettingRule.Text) : Attribute
{
    public string Name { get; } = name;
    public SettingRule Rule { get; } = rule;
}

/// <summary>An options class with checks beyond one value's type (a pattern, a list of addresses): messages "VARIABLE: problem".</summary>
public interface IChecksSettings
{
    IEnumerable<string> Problems();
}
