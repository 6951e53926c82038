<#
.SYNOPSIS
    Prints this host's user sessions as one JSON array for the rasmon agent's `wts` source.
.DESCRIPTION
    Asks the WTS API directly rather than parsing quser, whose text is localized and truncates names.
    Each object carries exactly the fields of the agent's RawSession (agent/src/sources/raw-session.ts);
    agent/src/sources/wts-output.ts validates them. Windows PowerShell 5.1, no modules.
.PARAMETER AdminGroups
    Extra groups (DOMAIN\name, a local group name, or a SID) whose members count as administrators,
    beside BUILTIN\Administrators.
#>
[CmdletBinding()]
param([string[]]$AdminGroups = @())

Set-StrictMode -Version 2
# Windows PowerShell 5.1 otherwise serializes some arrays as {"value":[...],"Count":n} (absent in PS 7).
Remove-TypeData System.Array -ErrorAction SilentlyContinue
$ErrorActionPreference = 'Stop'
# The agent decodes stdout as UTF-8; the console default (an OEM code page) would mangle non-ASCII names.
# Started without a console there is no code page to set, and the pipe's default stands.
try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { }
# `powershell -File` passes `-AdminGroups a,b` as the one string "a,b"; account names cannot hold commas.
$AdminGroups = @(($AdminGroups -join ',') -split ',' | ForEach-Object { $_.Trim() } | Where-Object { $_ })

# Problems go to stderr: the console host writes warnings to stdout, which must hold only the JSON.
function Write-Problem([string]$Text) { [Console]::Error.WriteLine("wts-sessions.ps1: $Text") }

# C# 5 only: Windows PowerShell compiles Add-Type with the .NET Framework compiler.
Add-Type -TypeDefinition @'
using System;
using System.Net;
using System.Runtime.InteropServices;

public static class RasmonWts {
    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
    public struct SessionInfo1 {   // WTS_SESSION_INFO_1W
        public int ExecEnvId, State, SessionId;
        public string SessionName, HostName, UserName, DomainName, FarmName;
    }

    [DllImport("wtsapi32.dll", SetLastError = true)]
    static extern bool WTSEnumerateSessionsExW(IntPtr server, ref int level, int filter, out IntPtr info, out int count);
    [DllImport("wtsapi32.dll")]
    static extern bool WTSFreeMemoryExW(int typeClass, IntPtr memory, int count);
    [DllImport("wtsapi32.dll", SetLastError = true)]
    static extern bool WTSQuerySessionInformationW(IntPtr server, int sessionId, int infoClass, out IntPtr buffer, out int bytes);
    [DllImport("wtsapi32.dll")]
    static extern void WTSFreeMemory(IntPtr memory);

    public static SessionInfo1[] Sessions() {
        IntPtr buffer; int count; int level = 1;
        if (!WTSEnumerateSessionsExW(IntPtr.Zero, ref level, 0, out buffer, out count))
            throw new System.ComponentModel.Win32Exception();
        try {
            SessionInfo1[] list = new SessionInfo1[count];
            int size = Marshal.SizeOf(typeof(SessionInfo1));
            for (int i = 0; i < count; i++)
                list[i] = (SessionInfo1)Marshal.PtrToStructure(new IntPtr(buffer.ToInt64() + (long)i * size), typeof(SessionInfo1));
            return list;
        } finally { WTSFreeMemoryExW(2 /* WTSTypeSessionInfoLevel1 */, buffer, count); }
    }

    // A session can log off between the enumeration and the query: then there is nothing to report.
    static byte[] Query(int sessionId, int infoClass) {
        IntPtr buffer; int bytes;
        if (!WTSQuerySessionInformationW(IntPtr.Zero, sessionId, infoClass, out buffer, out bytes)) return null;
        try { byte[] data = new byte[bytes]; Marshal.Copy(buffer, data, 0, bytes); return data; }
        finally { WTSFreeMemory(buffer); }
    }

    public static string Text(int sessionId, int infoClass) {
        byte[] data = Query(sessionId, infoClass);
        if (data == null) return null;
        string text = System.Text.Encoding.Unicode.GetString(data).TrimEnd('\0');
        return text.Length == 0 ? null : text;
    }

    public static object ProtocolType(int sessionId) {   // WTSClientProtocolType, a USHORT
        byte[] data = Query(sessionId, 16);
        return data == null || data.Length < 2 ? null : (object)(int)BitConverter.ToUInt16(data, 0);
    }

    // WTS_CLIENT_ADDRESS: DWORD AddressFamily, BYTE Address[20]. IPv4 sits at Address[2..5] (as in a
    // sockaddr, after the port); IPv6 is documented as the 16 raw bytes from Address[0].
    public static string ClientAddress(int sessionId) {
        byte[] data = Query(sessionId, 14);
        if (data == null || data.Length < 24) return null;
        int family = BitConverter.ToInt32(data, 0);
        byte[] raw;
        if (family == 2) { raw = new byte[4]; Array.Copy(data, 6, raw, 0, 4); }
        else if (family == 23) { raw = new byte[16]; Array.Copy(data, 4, raw, 0, 16); }
        else return null;
        IPAddress address = new IPAddress(raw);
        return address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) ? null : address.ToString();
    }

    // WTSINFOW: 8 DWORDs, WCHAR[32] station, WCHAR[17] domain, WCHAR[21] user (= 172 bytes, padded to
    // 176), then the LARGE_INTEGER times Connect, Disconnect, LastInput, Logon (offset 200), Current.
    public static object LogonTimeMs(int sessionId) {
        byte[] data = Query(sessionId, 24);
        if (data == null || data.Length < 208) return null;
        long fileTime = BitConverter.ToInt64(data, 200);
        if (fileTime <= 0) return null;
        return (fileTime - 116444736000000000L) / 10000L;   // FILETIME (100 ns since 1601) to Unix ms
    }
}
'@

$StateNames = 'active', 'connected', 'connectquery', 'shadow', 'disconnected', 'idle', 'listen', 'reset', 'down', 'init'

# Users of a group as lower-case DOMAIN\name, nested groups expanded. ADSI's WinNT provider reads local
# and domain groups alike and names member classes in English on every display language, where
# Get-LocalGroupMember stops at the first level, localizes ObjectClass and fails on an orphaned SID.
function Add-GroupUsers([string]$Group, [System.Collections.Generic.HashSet[string]]$Users, [System.Collections.Generic.HashSet[string]]$Seen) {
    $domain = $env:COMPUTERNAME
    $name = $Group
    if ($Group -match '^S-1-') {
        # The SID gives the local name on any language ("Administratoren"); BUILTIN itself is no ADSI domain.
        $name = (New-Object System.Security.Principal.SecurityIdentifier $Group).Translate([System.Security.Principal.NTAccount]).Value
        if ($Group -match '^S-1-5-32-') { $name = $name.Split('\')[-1] }
    }
    if ($name -match '\\') { $domain, $name = $name.Split('\', 2) }
    $path = "WinNT://$domain/$name"
    if (-not $Seen.Add($path.ToLowerInvariant())) { return }   # a group nested in itself
    foreach ($member in @(([ADSI]"$path,group").psbase.Invoke('Members'))) {
        $type = $member.GetType()
        $memberPath = [string]$type.InvokeMember('ADsPath', 'GetProperty', $null, $member, $null)
        # WinNT://CORP/alice or WinNT://CORP/HOST/alice: the last two parts are the account's DOMAIN\name.
        $parts = $memberPath.Substring(8).Split('/')
        if ($parts.Count -lt 2) { continue }   # an orphaned SID: no account to match
        $account = '{0}\{1}' -f $parts[-2], $parts[-1]
        if ([string]$type.InvokeMember('Class', 'GetProperty', $null, $member, $null) -eq 'Group') {
            try { Add-GroupUsers $account $Users $Seen } catch { Write-Problem "cannot expand group ${account}: $_" }
        } else {
            [void]$Users.Add($account.ToLowerInvariant())
        }
    }
}

# Without the Administrators list, `admin` stays unknown (null) rather than a guessed false.
$admins = New-Object 'System.Collections.Generic.HashSet[string]'
$seen = New-Object 'System.Collections.Generic.HashSet[string]'
try { Add-GroupUsers 'S-1-5-32-544' $admins $seen } catch { Write-Problem "cannot read Administrators: $_"; $admins = $null }
foreach ($group in $AdminGroups) {
    try { if ($null -ne $admins) { Add-GroupUsers $group $admins $seen } } catch { Write-Problem "cannot read group ${group}: $_" }
}

# Image names per session: published apps run rdpinit.exe and rdpshell.exe instead of explorer.exe.
# ProcessName drops the extension; user sessions run only .exe images, so it is put back.
$processes = @{}
foreach ($process in Get-Process) {
    if (-not $processes.ContainsKey($process.SessionId)) {
        $processes[$process.SessionId] = New-Object 'System.Collections.Generic.SortedSet[string]'
    }
    [void]$processes[$process.SessionId].Add($process.ProcessName.ToLowerInvariant() + '.exe')
}

$sessions = New-Object System.Collections.ArrayList
foreach ($info in [RasmonWts]::Sessions()) {
    $id = $info.SessionId
    $user = [RasmonWts]::Text($id, 5)      # WTSUserName
    if ($id -eq 0 -or [string]::IsNullOrEmpty($user)) { continue }   # services, listeners, an unused console
    $domain = [RasmonWts]::Text($id, 7)    # WTSDomainName
    $admin = $null
    if ($null -ne $admins) { $admin = $admins.Contains(('{0}\{1}' -f $domain, $user).ToLowerInvariant()) }
    $names = @()
    if ($processes.ContainsKey($id)) { $names = [string[]]@($processes[$id]) }
    [void]$sessions.Add([pscustomobject][ordered]@{
        sessionId     = $id
        user          = $user
        domain        = $domain
        state         = $StateNames[$info.State]
        sessionName   = $info.SessionName
        logonTime     = [RasmonWts]::LogonTimeMs($id)
        clientName    = [RasmonWts]::Text($id, 10)   # WTSClientName
        clientAddress = [RasmonWts]::ClientAddress($id)
        protocolType  = [RasmonWts]::ProtocolType($id)
        processes     = $names
        admin         = $admin
    })
}

# -InputObject keeps a list of one (or none) an array; piping would unwrap it.
ConvertTo-Json -InputObject @($sessions.ToArray()) -Depth 4
