namespace RsCapRet.Core;

/// <summary>Exception messages as users see them, on the command line and in HTTP error bodies.</summary>
public static class ErrorMessages
{
    /// <summary>
    /// The message without what .NET appends for developers: " (Parameter 'name')" and, for out-of-range values,
    /// a second line with the actual value.
    /// </summary>
    public static string OneLine(Exception e)
    {
        var message = e is ArgumentException { ParamName: { } name } ? e.Message.Replace($" (Parameter '{name}')", "") : e.Message;
        return string.Join(' ', message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}
